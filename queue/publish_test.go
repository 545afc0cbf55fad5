package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Publish stores a record once per msgID, says when the stream already had
// it, and reports the server's refusal and a subject no stream listens on
// as errors a caller can match.
func TestPublishStoresOnceAndReportsRefusal(t *testing.T) {
	c := adminConn(t)
	ctx := context.Background()
	cfg := c.Config()

	dup, err := c.Publish(ctx, cfg.DLQSubject, "seq-1", nil, []byte("first"))
	require.NoError(t, err)
	require.False(t, dup)
	dup, err = c.Publish(ctx, cfg.DLQSubject, "seq-1", nil, []byte("again"))
	require.NoError(t, err)
	require.True(t, dup, "same Nats-Msg-Id within the duplicate window")
	dup, err = c.Publish(ctx, cfg.DLQSubject, "", nil, []byte("no id"))
	require.NoError(t, err)
	require.False(t, dup)

	s, err := c.Stream(ctx, cfg.DLQStream)
	require.NoError(t, err)
	m, err := s.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []byte("first"), m.Data)
	require.Equal(t, []string{"seq-1"}, m.Header["Nats-Msg-Id"])
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.State.Msgs, "the repeat was not stored")

	// A stream that refuses (full, discard new) answers with an API error.
	_, err = c.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TINY", Subjects: []string{"tiny"}, MaxMsgs: 1, Discard: jetstream.DiscardNew,
	})
	require.NoError(t, err)
	_, err = c.Publish(ctx, "tiny", "a", nil, []byte("a"))
	require.NoError(t, err)
	_, err = c.Publish(ctx, "tiny", "b", nil, []byte("b"))
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Contains(t, apiErr.Description, "maximum messages", apiErr.Error())

	// No stream on the subject: no responders, retried, then reported.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	started := time.Now()
	_, err = c.Publish(ctx, "nobody.listens", "x", nil, []byte("x"))
	require.ErrorIs(t, err, jetstream.ErrNoStreamResponse)
	require.GreaterOrEqual(t, time.Since(started), time.Duration(jetstream.DefaultPubRetryAttempts)*jetstream.DefaultPubRetryWait,
		"retried before giving up")
}
