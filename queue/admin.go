package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors the operator tools tell apart. They match with errors.Is.
var (
	// ErrStreamNotFound: the named stream does not exist.
	ErrStreamNotFound = jetstream.ErrStreamNotFound
	// ErrConsumerNotFound: the named consumer does not exist.
	ErrConsumerNotFound = jetstream.ErrConsumerNotFound
	// ErrMsgNotFound: no message is stored at that sequence (never was, or
	// deleted, or expired).
	ErrMsgNotFound = jetstream.ErrMsgNotFound
)

// Stream is a handle on one stream, for reading and removing its messages
// by sequence. It is safe for concurrent use.
type Stream struct {
	s    jetstream.Stream
	name string
}

// Stream looks a stream up; the error wraps ErrStreamNotFound when it does
// not exist.
func (c *Conn) Stream(ctx context.Context, name string) (*Stream, error) {
	s, err := c.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return &Stream{s: s, name: name}, nil
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.name }

// Info returns the stream's current configuration and state.
func (s *Stream) Info(ctx context.Context) (*jetstream.StreamInfo, error) {
	info, err := s.s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.name, err)
	}
	return info, nil
}

// GetMsg returns the message stored at seq, or an error wrapping
// ErrMsgNotFound.
func (s *Stream) GetMsg(ctx context.Context, seq uint64) (StoredMsg, error) {
	m, err := s.s.GetMsg(ctx, seq)
	if err != nil {
		return StoredMsg{}, fmt.Errorf("get %s message %d: %w", s.name, seq, err)
	}
	return StoredMsg{Seq: m.Sequence, Subject: m.Subject, Header: m.Header, Data: m.Data, Time: m.Time}, nil
}

// DeleteMsg removes the message at seq. When nothing is stored there
// (already deleted, e.g. by a concurrent run) the error wraps
// ErrMsgNotFound, so a caller can treat "gone" as done.
func (s *Stream) DeleteMsg(ctx context.Context, seq uint64) error {
	if err := s.s.DeleteMsg(ctx, seq); err != nil {
		// The server's answer for a missing sequence is a generic "delete
		// unsuccessful"; ask whether the message is there to tell them apart.
		if _, gerr := s.s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("delete %s message %d: %w", s.name, seq, ErrMsgNotFound)
		}
		return fmt.Errorf("delete %s message %d: %w", s.name, seq, err)
	}
	return nil
}

// Purge removes the messages stored below sequence before (0: all of
// them). Bounding it by the last sequence a caller counted keeps messages
// that arrive meanwhile.
func (s *Stream) Purge(ctx context.Context, before uint64) error {
	var opts []jetstream.StreamPurgeOpt
	if before > 0 {
		opts = append(opts, jetstream.WithPurgeSequence(before))
	}
	if err := s.s.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge %s: %w", s.name, err)
	}
	return nil
}

// ConsumerInfo returns the figures of a durable consumer, or an error
// wrapping ErrConsumerNotFound (or ErrStreamNotFound).
func (c *Conn) ConsumerInfo(ctx context.Context, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	cons, err := c.JS.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", consumer, stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", consumer, stream, err)
	}
	return info, nil
}

// Outgoing is one message for a Publisher.
type Outgoing struct {
	Subject string
	// MsgID is sent as Nats-Msg-Id; "" sends none (and disables retries).
	MsgID  string
	Header nats.Header
	Data   []byte
	// Ref is the caller's own reference (a line number, a sequence), handed
	// back in the PublishResult.
	Ref uint64
}

// PublishResult is the fate of one Outgoing.
type PublishResult struct {
	Outgoing
	// Seq is the stream sequence of the stored message (for a duplicate,
	// the one stored earlier).
	Seq uint64
	// Duplicate reports that the stream already held a message with MsgID
	// within its duplicate window: nothing new was stored.
	Duplicate bool
	// Err is non-nil when the message may not be stored: no ack came
	// within the timeout after every retry, or the server refused it.
	Err error
}

// PublisherStats counts results so far.
type PublisherStats struct {
	// Stored counts messages acknowledged as newly stored.
	Stored int64
	// Duplicates counts messages acknowledged as duplicates.
	Duplicates int64
	// Failed counts messages without an ack after every retry.
	Failed int64
}

// Done is the number of messages whose fate is known.
func (s PublisherStats) Done() int64 { return s.Stored + s.Duplicates + s.Failed }

// PublisherConfig configures a Publisher. Zero values mean the defaults.
type PublisherConfig struct {
	// Window is the most messages sent but not yet acknowledged. Default 256.
	Window int
	// AckTimeout bounds the wait for one publish ack. Default 10s.
	AckTimeout time.Duration
	// Retries is how many more times a message with a MsgID is sent after
	// its ack failed or did not come; the stream's duplicate window makes a
	// repeat harmless. Messages without MsgID are never repeated. Default
	// 2; negative means none.
	Retries int
	// ExpectStream, when set, makes the server refuse a message that would
	// be stored in another stream (Nats-Expected-Stream).
	ExpectStream string
	// OnResult, when set, is called once per message, in publish order,
	// from a single goroutine, as soon as its fate is known. The window
	// does not move while it runs, so it may do synchronous work that must
	// follow the ack (e.g. delete the source of a replay).
	OnResult func(PublishResult)
}

// Publisher publishes many messages asynchronously with a bounded window of
// unacknowledged ones and learns the fate of each from its ack: stored,
// duplicate, or failed. Publish and Close must be called from one
// goroutine.
type Publisher struct {
	js      jetstream.JetStream
	cfg     PublisherConfig
	slots   chan struct{}
	pending chan inflight
	done    chan struct{}
	closed  bool

	stored, dups, failed atomic.Int64
}

type inflight struct {
	out Outgoing
	msg *nats.Msg
	f   jetstream.PubAckFuture
}

// NewPublisher starts a Publisher on c's connection; Close stops it.
func (c *Conn) NewPublisher(cfg PublisherConfig) (*Publisher, error) {
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
	// timeout must not apply to the rest of the connection's users.
	js, err := jetstream.New(c.NC,
		jetstream.WithPublishAsyncMaxPending(cfg.Window),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := &Publisher{
		js: js, cfg: cfg,
		slots:   make(chan struct{}, cfg.Window),
		pending: make(chan inflight, cfg.Window),
		done:    make(chan struct{}),
	}
	go p.collect()
	return p, nil
}

// Publish sends m and returns without waiting for its ack; it blocks while
// Window messages await theirs. It fails only when ctx ends first or the
// message could not be sent at all (it is then not counted and not handed
// to OnResult).
func (p *Publisher) Publish(ctx context.Context, m Outgoing) error {
	if p.closed {
		return errors.New("publish: publisher closed")
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	msg := newMsg(m, p.cfg.ExpectStream)
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		<-p.slots
		return fmt.Errorf("publish to %s: %w", m.Subject, err)
	}
	p.pending <- inflight{out: m, msg: msg, f: f} // never blocks: slots bound it
	return nil
}

// Stats returns the counts so far.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{Stored: p.stored.Load(), Duplicates: p.dups.Load(), Failed: p.failed.Load()}
}

// Close waits until the fate of every published message is known (at most
// about AckTimeout × (1 + Retries) after the last Publish), releases the
// publisher's subscription and returns the final counts.
func (p *Publisher) Close() PublisherStats {
	if !p.closed {
		p.closed = true
		close(p.pending)
		<-p.done
		// Every future is resolved: drop the reply subscription (and the
		// goroutine that watches the connection for it).
		p.js.CleanupPublisher()
	}
	return p.Stats()
}

func newMsg(m Outgoing, expectStream string) *nats.Msg {
	h := make(nats.Header, len(m.Header)+2)
	for k, v := range m.Header {
		h[k] = v
	}
	if m.MsgID != "" {
		h.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	if expectStream != "" {
		h.Set(jetstream.ExpectedStreamHeader, expectStream)
	}
	return &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}
}

// collect waits for acks in publish order; acks arrive in that order too, so
// waiting on the oldest first costs nothing.
func (p *Publisher) collect() {
	defer close(p.done)
	for in := range p.pending {
		r := PublishResult{Outgoing: in.out}
		select {
		case ack := <-in.f.Ok():
			r.Seq, r.Duplicate = ack.Sequence, ack.Duplicate
		case err := <-in.f.Err():
			r.Seq, r.Duplicate, r.Err = p.retry(in, err)
		}
		switch {
		case r.Err != nil:
			p.failed.Add(1)
		case r.Duplicate:
			p.dups.Add(1)
		default:
			p.stored.Add(1)
		}
		if p.cfg.OnResult != nil {
			p.cfg.OnResult(r)
		}
		<-p.slots
	}
}

// retry sends a message whose async ack failed again, synchronously. Only
// messages with a MsgID are repeated, and never ones the server refused
// for a reason a repeat cannot fix (wrong stream, stream full).
func (p *Publisher) retry(in inflight, err error) (seq uint64, dup bool, _ error) {
	if in.out.MsgID == "" || !retryable(err) {
		return 0, false, fmt.Errorf("publish to %s: %w", in.out.Subject, err)
	}
	for range p.cfg.Retries {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.AckTimeout)
		ack, rerr := p.js.PublishMsg(ctx, &nats.Msg{Subject: in.msg.Subject, Header: in.msg.Header, Data: in.msg.Data})
		cancel()
		if rerr == nil {
			return ack.Sequence, ack.Duplicate, nil
		}
		err = rerr
		if !retryable(err) {
			break
		}
	}
	return 0, false, fmt.Errorf("publish to %s: %w", in.out.Subject, err)
}

func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// A JetStream answer is final: wrong stream, full, too large.
		return false
	}
	return true
}
