package queue

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// embeddedConn starts an embedded JetStream server for an internal test
// and connects to it; both end with the test, which fails on a goroutine
// the test leaves behind.
func embeddedConn(t *testing.T) (*Conn, context.Context) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, err := Connect(ctx, Config{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(time.Second) })
	return c, ctx
}
