package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// operatorStreams creates the request and dead-letter streams as an
// operator chose them, before any worker started: dead letters kept 90
// days, a longer duplicate window, a message cap and Discard old on the
// request stream, which stores another subject only.
func operatorStreams(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: queue.DefaultDLQStream, Subjects: []string{queue.DefaultDLQSubject},
		Storage: jetstream.FileStorage, MaxAge: 90 * 24 * time.Hour, Duplicates: time.Hour,
	})
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: queue.DefaultStream, Subjects: []string{"codearts.build.other"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, MaxMsgs: 1_000_000, Discard: jetstream.DiscardOld,
	})
	require.NoError(t, err)
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	require.NoError(t, err)
	return s.CachedInfo().Config
}

// A worker's start never weakens (nor otherwise changes) a stream its
// operator set up: it keeps every setting, says at warn what differs, and
// only adds the subject it needs.
func TestEnsureKeepsOperatorSettings(t *testing.T) {
	ns := startServer(t, true, nil)
	c, logs := connectLogged(t, queue.Config{URL: ns.ClientURL()})
	operatorStreams(t, c.JS)

	require.NoError(t, c.Ensure(context.Background()))

	dlq := streamConfig(t, c.JS, queue.DefaultDLQStream)
	require.Equal(t, 90*24*time.Hour, dlq.MaxAge, "dead letters are kept as long as the operator said")
	req := streamConfig(t, c.JS, queue.DefaultStream)
	require.Equal(t, 10*time.Minute, req.Duplicates)
	require.EqualValues(t, 1_000_000, req.MaxMsgs)
	require.Equal(t, jetstream.DiscardOld, req.Discard)
	require.Equal(t, []string{"codearts.build.other", queue.DefaultSubject}, req.Subjects, "the missing subject is added")

	var said []string
	for _, e := range logs.FilterMessage("existing stream setting kept").All() {
		said = append(said, e.ContextMap()["detail"].(string))
	}
	require.Contains(t, said, "stream CODEARTS_RECOVER_DLQ keeps max_age 2160h; the worker would create 336h; pass --update-streams to change it")
	require.Contains(t, said, "stream CODEARTS_RECOVER keeps duplicate_window 10m; the worker would create 2m; pass --update-streams to change it")
	require.Contains(t, said, "stream CODEARTS_RECOVER keeps max_msgs 1000000; the worker would create unlimited; pass --update-streams to change it")
	require.Contains(t, said, "stream CODEARTS_RECOVER keeps discard old; the worker would create new; pass --update-streams to change it")

	// Trying again (a start-up that waits) says nothing new and changes
	// nothing.
	n := logs.Len()
	require.NoError(t, c.Ensure(context.Background()))
	require.Equal(t, n, logs.Len())
	require.Equal(t, 90*24*time.Hour, streamConfig(t, c.JS, queue.DefaultDLQStream).MaxAge)
}

// The worker's streams refuse a request larger than any the worker accepts,
// at publish, and bound the records the worker writes.
func TestOversizedRequestRefusedAtPublish(t *testing.T) {
	ns := startServer(t, true, nil)
	c, _ := connectLogged(t, queue.Config{URL: ns.ClientURL()})
	ctx := context.Background()
	require.NoError(t, c.Ensure(ctx))

	// The largest body the decoder accepts (64 KiB), with headers, is stored.
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'a'
	}
	_, err := c.Publish(ctx, queue.DefaultSubject, "big-but-fine", map[string][]string{
		"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "ce-specversion": {"1.0"},
	}, body)
	require.NoError(t, err)

	_, err = c.Publish(ctx, queue.DefaultSubject, "too-big", nil, make([]byte, 100<<10))
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, jetstream.JSErrCodeStreamMessageExceedsMaximum, apiErr.ErrorCode)
	require.Contains(t, err.Error(), "message size exceeds maximum allowed")

	require.EqualValues(t, 72<<10, streamConfig(t, c.JS, queue.DefaultStream).MaxMsgSize)
	require.EqualValues(t, 256<<10, streamConfig(t, c.JS, queue.DefaultDLQStream).MaxMsgSize)
	require.EqualValues(t, 256<<10, streamConfig(t, c.JS, queue.DefaultResultStream).MaxMsgSize)
}
