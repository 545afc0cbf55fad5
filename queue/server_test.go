package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// startServer starts an in-process nats-server (JetStream only with js)
// with opts on top of the test defaults; it stops when the test ends, and
// the test must leave no goroutine behind.
func startServer(t *testing.T, js bool, opts func(*server.Options)) *server.Server {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true, JetStream: js, StoreDir: t.TempDir()}
	if opts != nil {
		opts(o)
	}
	ns, err := server.NewServer(o)
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// connectLogged connects with cfg and a logger whose warn lines the test
// reads.
func connectLogged(t *testing.T, cfg queue.Config) (*queue.Conn, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.WarnLevel)
	cfg.Logger = zap.New(core)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := queue.Connect(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(time.Second) })
	return c, logs
}

// setUp is the worker's start-up as `worker run` makes it: streams and
// consumer ensured, the consumer and the advisory consumer bound.
func setUp(c *queue.Conn) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.Ensure(ctx); err != nil {
			return err
		}
		if _, err := c.Consumer(ctx); err != nil {
			return err
		}
		_, err := c.Advisories(ctx)
		return err
	}
}
