package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer fetches requests from the durable pull consumer.
type Consumer struct {
	c    *Conn
	cons jetstream.Consumer
}

// Consumer binds the configured durable consumer (it must exist: call
// Ensure first).
func (c *Conn) Consumer(ctx context.Context) (*Consumer, error) {
	cons, err := c.JS.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s on %s: %w", c.cfg.Consumer, c.cfg.Stream, err)
	}
	return &Consumer{c: c, cons: cons}, nil
}

// Batch is the answer to one pull request: messages arrive on Messages as
// the server sends them; the channel closes when the batch is complete, the
// pull expired or ctx ended. Err tells why it ended abnormally.
type Batch struct {
	b    jetstream.MessageBatch
	out  chan *Message
	done chan struct{}
	err  error
}

// Messages returns the channel of fetched messages.
func (b *Batch) Messages() <-chan *Message { return b.out }

// Err returns the error that ended the batch, if any, once Messages closed.
// An expired pull, a cancelled context and "no messages" are not errors.
func (b *Batch) Err() error {
	<-b.done
	return b.err
}

// Fetch sends one pull request for at most n messages and returns at once.
// The request expires after the configured FetchWait or when ctx ends; the
// caller must then be ready for up to n messages, which is why it is given
// the number of free worker slots and nothing more.
func (c *Consumer) Fetch(ctx context.Context, n int) (*Batch, error) {
	fctx, cancel := context.WithTimeout(ctx, c.c.cfg.FetchWait)
	mb, err := c.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fetch %d from %s: %w", n, c.c.cfg.Consumer, err)
	}
	b := &Batch{b: mb, out: make(chan *Message), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer close(b.out)
		defer cancel()
		for m := range mb.Messages() {
			msg, err := newMessage(m)
			if err != nil {
				// A message without JetStream metadata cannot be acked;
				// it is not ours to handle (never happens on a pull).
				continue
			}
			b.out <- msg
		}
		if err := mb.Error(); err != nil && !benign(err) {
			b.err = fmt.Errorf("fetch from %s: %w", c.c.cfg.Consumer, err)
		}
	}()
	return b, nil
}

func benign(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout)
}

// Connected reports whether the link to NATS is up. Up is not delivered:
// on a black-holed link the connection stays up while nothing arrives.
func (c *Consumer) Connected() bool { return c.c.Connected() }

// Flush returns nil once the server has received everything this
// connection sent before the call (a PING/PONG round trip; TCP keeps the
// order), or an error when ctx ends first: heartbeats sent before a Flush
// that returned nil reached the server.
func (c *Consumer) Flush(ctx context.Context) error { return c.c.NC.FlushWithContext(ctx) }

// Settings returns the bound consumer's AckWait and MaxDeliver as the server
// knows them (when it was bound): the pool's heartbeat and budget follow
// them instead of being told them a second time.
func (c *Consumer) Settings() (ackWait time.Duration, maxDeliver int) {
	info := c.cons.CachedInfo()
	return info.Config.AckWait, info.Config.MaxDeliver
}

// Info returns the consumer's current figures from the server.
func (c *Consumer) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	return c.cons.Info(ctx)
}

// Message is one delivery of a request.
type Message struct {
	m    jetstream.Msg
	meta *jetstream.MsgMetadata
}

func newMessage(m jetstream.Msg) (*Message, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	return &Message{m: m, meta: meta}, nil
}

// Body is the message payload.
func (m *Message) Body() []byte { return m.m.Data() }

// Header is the message's NATS headers (nil when none).
func (m *Message) Header() map[string][]string { return m.m.Headers() }

// Subject is the subject the request was published on.
func (m *Message) Subject() string { return m.m.Subject() }

// StreamSeq is the request's sequence in the stream; it identifies the
// request across redeliveries.
func (m *Message) StreamSeq() uint64 { return m.meta.Sequence.Stream }

// NumDelivered is 1 on the first delivery, 2 on the first redelivery, …
func (m *Message) NumDelivered() uint64 { return m.meta.NumDelivered }

// Timestamp is when the request was stored.
func (m *Message) Timestamp() time.Time { return m.meta.Timestamp }

// Ack acknowledges the message and waits for the server to confirm it, so
// a nil error means the request will not be delivered again.
func (m *Message) Ack(ctx context.Context) error { return m.m.DoubleAck(ctx) }

// Nak hands the message back; the server redelivers it after delay (0 =
// at once, to any consumer instance).
func (m *Message) Nak(delay time.Duration) error {
	if delay <= 0 {
		return m.m.Nak()
	}
	return m.m.NakWithDelay(delay)
}

// InProgress resets the server's AckWait timer for this message.
func (m *Message) InProgress() error { return m.m.InProgress() }
