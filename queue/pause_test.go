package queue_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// A resume that meets a server going through a restart (a node down, a
// leader election) is tried again until it lands: a fleet-wide pause must
// not outlive its cause by the pause's whole lease while every replica
// reports ready.
func TestResumeOutlastsAServerRestart(t *testing.T) {
	dir := t.TempDir()
	ns := startServer(t, true, func(o *server.Options) { o.StoreDir = dir })
	port := ns.Addr().(*net.TCPAddr).Port
	c, _ := connectLogged(t, queue.Config{URL: ns.ClientURL()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, setUp(c)(ctx))
	until := time.Now().Add(10 * time.Minute)
	require.NoError(t, c.PauseConsumer(ctx, until))

	ns.Shutdown()
	ns.WaitForShutdown()
	require.Eventually(t, func() bool { return !c.Connected() }, 10*time.Second, 20*time.Millisecond)
	resumed := make(chan error, 1)
	// As the gate calls it: a context without a deadline, so each try
	// takes JetStream's default timeout (5 s).
	go func() { resumed <- c.ResumeConsumer(context.WithoutCancel(ctx)) }()
	time.Sleep(7 * time.Second) // the fault: the server stays down for longer than one try
	startServer(t, true, func(o *server.Options) { o.Port, o.StoreDir = port, dir })
	t.Cleanup(func() { _ = c.Close(time.Second) }) // before this server's leak check
	require.NoError(t, <-resumed, "the resume gave up while the server restarted")

	info, err := c.JS.Consumer(ctx, queue.DefaultStream, queue.DefaultConsumer)
	require.NoError(t, err)
	require.False(t, info.CachedInfo().Paused, "the consumer is still paused until %s", until)
}
