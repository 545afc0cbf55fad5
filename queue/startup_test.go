package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// A worker started before JetStream is available (a server still starting
// it, a cluster without quorum) waits, says why, and sets everything up once
// JetStream answers; then it drains requests.
func TestAwaitWaitsForJetStream(t *testing.T) {
	ns := startServer(t, false, nil)
	c, logs := connectLogged(t, queue.Config{URL: ns.ClientURL(), FetchWait: time.Second})

	done := make(chan error, 1)
	go func() { done <- c.Await(context.Background(), "set up", setUp(c)) }()

	require.Eventually(t, func() bool {
		return logs.FilterMessage("JetStream not ready; trying again").Len() >= 2
	}, 20*time.Second, 10*time.Millisecond, "each failed try is logged at warn")
	require.Error(t, c.Waiting(), "the reason is there for readiness")
	entry := logs.FilterMessage("JetStream not ready; trying again").All()[0]
	require.Contains(t, entry.ContextMap()["error"], "no responders", "the log says why")
	select {
	case err := <-done:
		t.Fatalf("Await returned while JetStream was off: %v", err)
	default:
	}

	require.NoError(t, ns.EnableJetStream(&server.JetStreamConfig{StoreDir: t.TempDir()}))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Await did not finish within 30s of JetStream coming up")
	}
	require.NoError(t, c.Waiting(), "no longer waiting")

	// It works: a request published now is fetched from the consumer.
	ctx := context.Background()
	_, err := c.Publish(ctx, queue.DefaultSubject, "job-1", nil, []byte("cb5fa20de5fd4cf8be681d4bd6fdd2f6"))
	require.NoError(t, err)
	cons, err := c.Consumer(ctx)
	require.NoError(t, err)
	b, err := cons.Fetch(ctx, 1)
	require.NoError(t, err)
	var got []string
	for m := range b.Messages() {
		got = append(got, string(m.Body()))
		require.NoError(t, m.Ack(ctx))
	}
	require.NoError(t, b.Err())
	require.Equal(t, []string{"cb5fa20de5fd4cf8be681d4bd6fdd2f6"}, got)
}

// SIGTERM while waiting: Await returns ctx's error at once, even in the
// middle of a backoff wait.
func TestAwaitEndsWithContext(t *testing.T) {
	ns := startServer(t, false, nil)
	c, logs := connectLogged(t, queue.Config{URL: ns.ClientURL()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Await(ctx, "set up", setUp(c)) }()
	require.Eventually(t, func() bool { return logs.Len() >= 3 }, 20*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Await did not return within 5s of its context ending")
	}
}

// Errors that waiting cannot heal end the start-up at the first try, with a
// message that says what to fix.
func TestAwaitFailsFastOnPermanentErrors(t *testing.T) {
	tests := []struct {
		giveName    string
		giveServer  func(*server.Options)
		giveConfig  queue.Config
		giveBefore  func(t *testing.T, js jetstream.JetStream) // the operator's doing
		wantIs      error
		wantMessage []string
	}{
		{
			giveName: "request stream without work-queue retention",
			giveBefore: func(t *testing.T, js jetstream.JetStream) {
				_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
					Name: queue.DefaultStream, Subjects: []string{queue.DefaultSubject}, Retention: jetstream.LimitsPolicy,
				})
				require.NoError(t, err)
			},
			wantIs:      queue.ErrIncompatible,
			wantMessage: []string{"stream CODEARTS_RECOVER has limits retention", "work-queue", "--stream"},
		},
		{
			giveName:    "replicas the server cannot have",
			giveConfig:  queue.Config{Replicas: 3},
			wantMessage: []string{"create stream CODEARTS_RECOVER", "replicas > 1 not supported"},
		},
		{
			giveName: "a permission the user lacks",
			giveServer: func(o *server.Options) {
				o.Users = []*server.User{{Username: "worker", Password: "pw", Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.CONSUMER.>"}},
				}}}
			},
			giveConfig:  queue.Config{User: "worker", Password: "pw"},
			wantIs:      nats.ErrPermissionViolation,
			wantMessage: []string{"$JS.API.CONSUMER.", "lacks a permission"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.giveName, func(t *testing.T) {
			ns := startServer(t, true, tt.giveServer)
			cfg := tt.giveConfig
			cfg.URL = ns.ClientURL()
			c, logs := connectLogged(t, cfg)
			if tt.giveBefore != nil {
				tt.giveBefore(t, c.JS)
			}
			var tries atomic.Int32
			err := c.Await(context.Background(), "set up", func(ctx context.Context) error {
				tries.Add(1)
				return setUp(c)(ctx)
			})
			require.Error(t, err)
			t.Logf("error: %v", err)
			require.True(t, queue.Permanent(err), "%v", err)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			for _, want := range tt.wantMessage {
				require.Contains(t, err.Error(), want)
			}
			require.EqualValues(t, 1, tries.Load(), "no second try")
			require.Zero(t, logs.FilterMessage("JetStream not ready; trying again").Len())
		})
	}
}

// Bad NATS credentials stop the start at once, saying so.
func TestConnectFailsFastOnBadCredentials(t *testing.T) {
	ns := startServer(t, true, func(o *server.Options) { o.Username, o.Password = "worker", "right" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := queue.Connect(ctx, queue.Config{URL: ns.ClientURL(), User: "worker", Password: "wrong"})
	require.Error(t, err)
	require.NoError(t, ctx.Err(), "it gave up by itself")
	require.Contains(t, err.Error(), "Authorization Violation")
	require.Contains(t, err.Error(), "--nats-password")
	require.NotContains(t, err.Error(), "wrong", "no secret in the message")
}
