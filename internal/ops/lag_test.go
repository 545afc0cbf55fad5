package ops_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
)

// fakeConsumer answers Info from a script, one answer per call, repeating
// the last.
type fakeConsumer struct {
	mu      sync.Mutex
	answers []answer
	calls   int
}

type answer struct {
	pending, ackPending int
	err                 error
}

func (f *fakeConsumer) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	if a.err != nil {
		return nil, a.err
	}
	return &jetstream.ConsumerInfo{NumPending: uint64(a.pending), NumAckPending: a.ackPending}, nil
}

func TestLagPoller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := setupMetrics(t)
		src := &fakeConsumer{answers: []answer{
			{pending: 1000, ackPending: 64},
			{err: errors.New("nats: timeout")},
			{err: fmt.Errorf("info: %w", jetstream.ErrConsumerNotFound)},
			{pending: 10, ackPending: 3},
		}}
		p := &ops.LagPoller{Consumer: src, Metrics: b.metrics, Interval: 15 * time.Second}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx)
		}()

		synctest.Wait() // first poll, at once
		body := b.scrape(t)
		require.Contains(t, body, "codearts_recover_consumer_pending_messages 1000")
		require.Contains(t, body, "codearts_recover_consumer_ack_pending_messages 64")
		require.NoError(t, p.Bound())

		time.Sleep(15 * time.Second) // fake time: the next tick
		synctest.Wait()
		body = b.scrape(t)
		require.Contains(t, body, "codearts_recover_consumer_pending_messages 1000", "a failed poll keeps the last value")
		require.Contains(t, body, "codearts_recover_consumer_info_errors_total 1")
		require.NoError(t, p.Bound(), "a timeout is not an unbound consumer")

		time.Sleep(15 * time.Second)
		synctest.Wait()
		require.ErrorIs(t, p.Bound(), jetstream.ErrConsumerNotFound)

		time.Sleep(15 * time.Second)
		synctest.Wait()
		require.NoError(t, p.Bound())
		body = b.scrape(t)
		require.Contains(t, body, "codearts_recover_consumer_pending_messages 10")
		require.Contains(t, body, "codearts_recover_consumer_ack_pending_messages 3")

		cancel()
		<-done
	})
}
