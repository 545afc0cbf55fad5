package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// adminConn starts an embedded NATS with the worker's streams and consumer
// and returns a connection; everything stops (and no goroutine remains)
// when the test ends.
func adminConn(t testing.TB) *queue.Conn {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(ns.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := queue.Connect(ctx, queue.Config{URL: ns.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(time.Second) })
	require.NoError(t, c.Ensure(ctx))
	return c
}

func TestAdminStreamGetDeletePurge(t *testing.T) {
	c := adminConn(t)
	ctx := context.Background()
	cfg := c.Config()
	for i := 1; i <= 5; i++ {
		_, err := c.Publish(ctx, cfg.DLQSubject, fmt.Sprint(i), nil, fmt.Appendf(nil, "record %d", i))
		require.NoError(t, err)
	}
	s, err := c.Stream(ctx, cfg.DLQStream)
	require.NoError(t, err)
	require.Equal(t, cfg.DLQStream, s.Name())

	m, err := s.GetMsg(ctx, 3)
	require.NoError(t, err)
	require.Equal(t, queue.StoredMsg{Seq: 3, Subject: cfg.DLQSubject, Header: m.Header, Data: []byte("record 3"), Time: m.Time}, m)
	require.False(t, m.Time.IsZero())

	require.NoError(t, s.DeleteMsg(ctx, 3))
	require.ErrorIs(t, s.DeleteMsg(ctx, 3), queue.ErrMsgNotFound, "a second delete says gone")
	_, err = s.GetMsg(ctx, 3)
	require.ErrorIs(t, err, queue.ErrMsgNotFound)
	require.ErrorIs(t, s.DeleteMsg(ctx, 99), queue.ErrMsgNotFound)

	require.NoError(t, s.Purge(ctx, 5), "below 5 only")
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)
	require.EqualValues(t, 5, info.State.FirstSeq)
	require.NoError(t, s.Purge(ctx, 0))
	info, err = s.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)

	_, err = c.Stream(ctx, "NOPE")
	require.ErrorIs(t, err, queue.ErrStreamNotFound)
}

func TestAdminConsumerInfo(t *testing.T) {
	c := adminConn(t)
	ctx := context.Background()
	cfg := c.Config()
	ci, err := c.ConsumerInfo(ctx, cfg.Stream, cfg.Consumer)
	require.NoError(t, err)
	require.Equal(t, cfg.Consumer, ci.Name)
	_, err = c.ConsumerInfo(ctx, cfg.Stream, "nope")
	require.ErrorIs(t, err, queue.ErrConsumerNotFound)
	_, err = c.ConsumerInfo(ctx, "NOPE", cfg.Consumer)
	require.ErrorIs(t, err, queue.ErrStreamNotFound)
}
