package producer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// BatchConfig configures a Batch. Zero values mean the defaults.
type BatchConfig struct {
	// Window is the most messages sent but not yet acknowledged: what a
	// Batch holds in memory, whatever the number of messages. Default 256.
	Window int
	// AckTimeout bounds the wait for one publish ack. Default 10 s.
	AckTimeout time.Duration
	// Retries is how many more times a message with a Nats-Msg-Id is sent
	// after its ack failed or did not come (the duplicate window makes a
	// repeat harmless); one without is never sent twice. Default 2;
	// negative means none.
	Retries int
	// OnResult, when set, is called once per message sent, in publish
	// order, from one goroutine, as soon as its fate is known: progress,
	// and the per-message errors. The message's window slot is freed only
	// when it returns, so it may do work that must follow the ack.
	OnResult func(BatchResult)
}

// BatchResult is the fate of one message of a Batch.
type BatchResult struct {
	Result
	// Ref is the caller's reference given with the message (EnqueueMany:
	// the request's index).
	Ref uint64
	// Err is non-nil when the message may not be stored: no ack within
	// AckTimeout after every retry, or JetStream refused it (wrong stream,
	// stream full, too large). Stored or Duplicate hold only when it is nil.
	Err error
}

// Stats counts a Batch's results so far.
type Stats struct {
	// Stored counts messages acknowledged as newly stored.
	Stored int64
	// Duplicates counts messages acknowledged as duplicates of messages
	// stored earlier within the stream's duplicate window.
	Duplicates int64
	// Failed counts messages without an ack after every retry, or refused.
	Failed int64
}

// Done is the number of messages whose fate is known.
func (s Stats) Done() int64 { return s.Stored + s.Duplicates + s.Failed }

// Batch publishes many messages asynchronously, with at most Window of them
// awaiting their ack, and learns the fate of each from its ack. Enqueue,
// Publish and Close are called from one goroutine; Close must be called:
// it stops the goroutine that collects the acks.
type Batch struct {
	c       *Client
	js      jetstream.JetStream
	cfg     BatchConfig
	slots   chan struct{}
	pending chan inflight
	done    chan struct{}
	closed  bool

	stored, dups, failed atomic.Int64
}

type inflight struct {
	ref  uint64
	m    Message
	msg  *nats.Msg
	f    jetstream.PubAckFuture
	span trace.Span
}

// NewBatch starts a Batch on the client's connection.
func (c *Client) NewBatch(cfg BatchConfig) (*Batch, error) {
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	// A JetStream context of its own: its async-publish limit and ack
	// timeout apply to this batch only.
	js, err := jetstream.New(c.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.Window),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("producer: jetstream: %w", err)
	}
	b := &Batch{
		c: c, js: js, cfg: cfg,
		slots:   make(chan struct{}, cfg.Window),
		pending: make(chan inflight, cfg.Window),
		done:    make(chan struct{}),
	}
	go b.collect()
	return b, nil
}

// Enqueue encodes r with the client's options and publishes it as Publish
// does, under a producer span of its own: the root of the request's trace,
// linked to ctx's span, so that a batch is a trace per request. An invalid
// r is an *InvalidError: nothing is sent, and the batch goes on.
func (b *Batch) Enqueue(ctx context.Context, r Request, ref uint64) error {
	m, err := b.c.Encode(r)
	if err != nil {
		return err
	}
	return b.publish(ctx, m, ref, true)
}

// Publish sends m as it is (a raw message: no span, its headers kept) and
// returns without waiting for the ack; it blocks while Window messages
// await theirs. It fails only when ctx ends first or the message could not
// be sent at all: it is then not counted and not handed to OnResult, and
// the batch should stop.
func (b *Batch) Publish(ctx context.Context, m Message, ref uint64) error {
	return b.publish(ctx, m, ref, false)
}

func (b *Batch) publish(ctx context.Context, m Message, ref uint64, traced bool) error {
	if b.closed {
		return errors.New("producer: batch closed")
	}
	msg := b.c.newMsg(m)
	var span trace.Span
	if traced {
		// Started before the wait for a slot: the span shows the wait.
		span = b.c.startSpan(ctx, &m, msg.Header, true)
	}
	select {
	case b.slots <- struct{}{}:
	case <-ctx.Done():
		endSpan(span, 0, false, ctx.Err())
		return ctx.Err()
	}
	f, err := b.js.PublishMsgAsync(msg)
	if err != nil {
		<-b.slots
		err = fmt.Errorf("publish to %s: %w", msg.Subject, err)
		endSpan(span, 0, false, err)
		return err
	}
	b.pending <- inflight{ref: ref, m: m, msg: msg, f: f, span: span} // never blocks: slots bound it
	return nil
}

// Stats returns the counts so far.
func (b *Batch) Stats() Stats {
	return Stats{Stored: b.stored.Load(), Duplicates: b.dups.Load(), Failed: b.failed.Load()}
}

// Close waits until the fate of every message sent is known (at most about
// AckTimeout × (1 + Retries) after the last one), stops the batch's
// goroutine and returns the final counts.
func (b *Batch) Close() Stats {
	if !b.closed {
		b.closed = true
		close(b.pending)
		<-b.done
		// Every future is resolved: drop the reply subscription (and the
		// goroutine that watches the connection for it).
		b.js.CleanupPublisher()
	}
	return b.Stats()
}

// collect waits for acks in publish order; they arrive in that order too,
// so waiting on the oldest first costs nothing.
func (b *Batch) collect() {
	defer close(b.done)
	for in := range b.pending {
		r := BatchResult{Result: Result{JobID: in.m.JobID, MsgID: in.m.MsgID}, Ref: in.ref}
		select {
		case ack := <-in.f.Ok():
			r.Seq, r.Duplicate = ack.Sequence, ack.Duplicate
		case err := <-in.f.Err():
			r.Seq, r.Duplicate, r.Err = b.retry(in, err)
		}
		switch {
		case r.Err != nil:
			b.failed.Add(1)
		case r.Duplicate:
			b.dups.Add(1)
		default:
			b.stored.Add(1)
		}
		endSpan(in.span, r.Seq, r.Duplicate, r.Err)
		b.result(r)
	}
}

// result hands r to OnResult and then frees its slot, even if OnResult
// panics.
func (b *Batch) result(r BatchResult) {
	defer func() { <-b.slots }()
	if b.cfg.OnResult != nil {
		b.cfg.OnResult(r)
	}
}

// retry sends a message whose async ack failed again, synchronously. Only
// messages with a MsgID are repeated, and never ones JetStream refused for
// a reason a repeat cannot fix (wrong stream, stream full, too large). It
// takes no context: what was sent must learn its fate after the caller's
// ended, each try bounded by AckTimeout. (contextcheck reads the directive
// below from the doc comment and skips the function for its callers.)
//
//nolint:contextcheck,nolintlint // bounded by AckTimeout, not by the caller's context
func (b *Batch) retry(in inflight, err error) (seq uint64, dup bool, _ error) {
	if in.m.MsgID == "" || !retryable(err) {
		return 0, false, fmt.Errorf("publish to %s: %w", in.msg.Subject, err)
	}
	for range b.cfg.Retries {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.AckTimeout)
		ack, rerr := b.js.PublishMsg(ctx, &nats.Msg{Subject: in.msg.Subject, Header: in.msg.Header, Data: in.msg.Data})
		cancel()
		if rerr == nil {
			return ack.Sequence, ack.Duplicate, nil
		}
		err = rerr
		if !retryable(err) {
			break
		}
	}
	return 0, false, fmt.Errorf("publish to %s: %w", in.msg.Subject, err)
}

func retryable(err error) bool {
	var apiErr *jetstream.APIError
	// A JetStream answer is final: wrong stream, full, too large.
	return !errors.As(err, &apiErr)
}

// EnqueueMany enqueues reqs through a Batch configured by cfg and returns
// each request's result at its index (Ref is the index): stored, duplicate,
// or its error: an *InvalidError (not sent), a publish failure, or
// ErrNotSent when the batch stopped before it. The error is ctx's, or a
// publish that could not be sent at all; every request sent has its result
// either way. cfg.OnResult sees the requests sent, as they are
// acknowledged.
func (c *Client) EnqueueMany(ctx context.Context, reqs []Request, cfg BatchConfig) ([]BatchResult, error) {
	results := make([]BatchResult, len(reqs))
	onResult := cfg.OnResult
	cfg.OnResult = func(r BatchResult) {
		results[r.Ref] = r // distinct elements from the loop's below
		if onResult != nil {
			onResult(r)
		}
	}
	b, err := c.NewBatch(cfg)
	if err != nil {
		return nil, err
	}
	sent := len(reqs)
	var stop error
	for i, r := range reqs {
		err := b.Enqueue(ctx, r, uint64(i))
		if inv, ok := errors.AsType[*InvalidError](err); ok {
			results[i] = BatchResult{Result: Result{JobID: r.JobID}, Ref: uint64(i), Err: inv}
			continue
		}
		if err != nil {
			sent, stop = i, err
			break
		}
	}
	b.Close()
	for i := sent; i < len(reqs); i++ {
		results[i] = BatchResult{Result: Result{JobID: reqs[i].JobID}, Ref: uint64(i), Err: ErrNotSent}
	}
	return results, stop
}
