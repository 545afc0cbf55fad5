package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// adminConn starts an embedded NATS with the worker's streams and consumer
// and returns a connection; everything stops (and no goroutine remains)
// when the test ends.
func adminConn(t *testing.T) *queue.Conn {
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

func TestAdminPublisherCountsDuplicatesInOrder(t *testing.T) {
	c := adminConn(t)
	cfg := c.Config()
	var results []queue.PublishResult
	p, err := c.NewPublisher(queue.PublisherConfig{
		Window: 8, ExpectStream: cfg.Stream,
		OnResult: func(r queue.PublishResult) { results = append(results, r) },
	})
	require.NoError(t, err)
	const n = 100
	for i := range n {
		id := fmt.Sprintf("job-%d", i)
		if i%5 == 4 {
			id = fmt.Sprintf("job-%d", i-1) // a repeat of the one before
		}
		require.NoError(t, p.Publish(context.Background(), queue.Outgoing{
			Subject: cfg.Subject, MsgID: id, Data: []byte(id), Ref: uint64(i),
			Header: nats.Header{"X-Test": {"yes"}},
		}))
	}
	st := p.Close()
	require.Equal(t, queue.PublisherStats{Stored: 80, Duplicates: 20}, st)
	require.Len(t, results, n)
	for i, r := range results {
		require.Equal(t, uint64(i), r.Ref, "results in publish order")
		require.NoError(t, r.Err)
		require.Equal(t, i%5 == 4, r.Duplicate)
		require.Equal(t, results[i-boolInt(r.Duplicate)].Seq, r.Seq, "a duplicate names the stored message")
	}
	s, err := c.Stream(context.Background(), cfg.Stream)
	require.NoError(t, err)
	m, err := s.GetMsg(context.Background(), 1)
	require.NoError(t, err)
	require.Equal(t, "job-0", string(m.Data))
	require.Equal(t, "yes", m.Header["X-Test"][0])
	require.Equal(t, "job-0", m.Header[jetstream.MsgIDHeader][0])
	require.Equal(t, queue.PublisherStats{Stored: 80, Duplicates: 20}, p.Close(), "Close is idempotent")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// No more than Window messages await their ack: while the first result is
// held, the next Publish blocks until its context ends.
func TestAdminPublisherWindowBoundsUnacked(t *testing.T) {
	c := adminConn(t)
	cfg := c.Config()
	entered, gate := make(chan struct{}), make(chan struct{})
	first := true
	p, err := c.NewPublisher(queue.PublisherConfig{
		Window: 4,
		OnResult: func(queue.PublishResult) {
			if first {
				first = false
				close(entered)
				<-gate
			}
		},
	})
	require.NoError(t, err)
	for i := range 4 {
		require.NoError(t, p.Publish(context.Background(), queue.Outgoing{Subject: cfg.Subject, Data: []byte{byte(i)}}))
	}
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = p.Publish(ctx, queue.Outgoing{Subject: cfg.Subject, Data: []byte("fifth")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(gate)
	require.Equal(t, queue.PublisherStats{Stored: 4}, p.Close(), "the refused fifth is not counted")
}

// A message the server refuses (here: it would land in another stream than
// expected) is reported failed, not retried, and not stored.
func TestAdminPublisherReportsRefusal(t *testing.T) {
	c := adminConn(t)
	cfg := c.Config()
	var errs []error
	p, err := c.NewPublisher(queue.PublisherConfig{
		ExpectStream: "ANOTHER",
		OnResult:     func(r queue.PublishResult) { errs = append(errs, r.Err) },
	})
	require.NoError(t, err)
	require.NoError(t, p.Publish(context.Background(), queue.Outgoing{Subject: cfg.Subject, MsgID: "x", Data: []byte("x")}))
	require.Equal(t, queue.PublisherStats{Failed: 1}, p.Close())
	require.Len(t, errs, 1)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, errs[0], &apiErr)
	info, err := c.StreamInfo(context.Background(), cfg.Stream)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)
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
