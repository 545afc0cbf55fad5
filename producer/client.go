package producer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// Subject is where requests are published. Default DefaultSubject.
	Subject string
	// Stream, when set, makes JetStream refuse a request that would be
	// stored in another stream (Nats-Expected-Stream): a subject the
	// request stream does not take fails instead of landing elsewhere. ""
	// does not check.
	Stream string
	// Encode says how requests become messages: body limit, regions,
	// Nats-Msg-Id. Zero: the worker's defaults, regions unchecked, the job
	// id as Nats-Msg-Id.
	Encode EncodeOptions
	// TracerProvider makes the producer spans. nil means OpenTelemetry's
	// global provider (a no-op unless the program set one): without
	// tracing, a request carries a traceparent only when ctx holds a span.
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context (and baggage, if it carries
	// baggage) of each request into its headers (OTEL_PROPAGATORS). nil =
	// W3C trace context, which the worker reads; an empty composite writes
	// nothing.
	Propagator propagation.TextMapPropagator
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case strings.ContainsAny(c.Subject, "*> \t\r\n"):
		return fmt.Errorf("producer: Subject %q is not a subject one can publish to", c.Subject)
	case strings.ContainsAny(c.Stream, ".*> \t\r\n"):
		return fmt.Errorf("producer: Stream %q is not a stream name", c.Stream)
	case c.Encode.MaxBytes < 0:
		return fmt.Errorf("producer: Encode.MaxBytes %d is negative", c.Encode.MaxBytes)
	}
	return nil
}

// Client publishes recover requests on one NATS connection. It is safe for
// concurrent use; it owns no goroutine (a Batch does, until Close).
type Client struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	cfg      Config
	tracer   trace.Tracer
	spanName string
}

// New returns a Client publishing through nc, which stays the caller's to
// close.
func New(nc *nats.Conn, cfg Config) (*Client, error) {
	if nc == nil {
		return nil, errors.New("producer: no NATS connection")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Subject == "" {
		cfg.Subject = DefaultSubject
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("producer: jetstream: %w", err)
	}
	return &Client{nc: nc, js: js, cfg: cfg, tracer: cfg.TracerProvider.Tracer(scope), spanName: "send " + cfg.Subject}, nil
}

// Encode is the package's Encode with the client's options.
func (c *Client) Encode(r Request) (Message, error) { return Encode(r, c.cfg.Encode) }

// Result is where a published request was stored.
type Result struct {
	// JobID is the request's job id ("" for a raw message that gave none).
	JobID string
	// MsgID is the Nats-Msg-Id sent ("" for none).
	MsgID string
	// Seq is the request's stream sequence; for a duplicate, the sequence
	// of the message stored earlier with the same MsgID.
	Seq uint64
	// Duplicate reports that the stream already held a message with this
	// MsgID within its duplicate window: nothing new was stored, and the
	// earlier request stands for this one.
	Duplicate bool
}

// Enqueue publishes r and returns once JetStream acknowledged it: stored,
// or a duplicate of a request stored within the stream's duplicate window.
// Its producer span is a child of ctx's span (an event handler's trace
// continues into the worker's). An invalid r is an *InvalidError and
// nothing is sent. Any other error means the request may or may not be
// stored: enqueuing it again is safe, its Nats-Msg-Id makes a repeat within
// the duplicate window a duplicate. A ctx without a deadline gets
// JetStream's default timeout (5 s).
func (c *Client) Enqueue(ctx context.Context, r Request) (Result, error) {
	m, err := c.Encode(r)
	if err != nil {
		return Result{}, err
	}
	msg := c.newMsg(m)
	span := c.startSpan(ctx, &m, msg.Header, false)
	ack, err := c.js.PublishMsg(ctx, msg)
	if err != nil {
		err = fmt.Errorf("enqueue %s: %w", r.JobID, err)
		endSpan(span, 0, false, err)
		return Result{}, err
	}
	endSpan(span, ack.Sequence, ack.Duplicate, nil)
	return Result{JobID: m.JobID, MsgID: m.MsgID, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// newMsg is the NATS message of m: its headers (copied: m's stay as they
// were), Nats-Msg-Id and Nats-Expected-Stream.
func (c *Client) newMsg(m Message) *nats.Msg {
	h := make(nats.Header, len(m.Header)+3)
	for k, v := range m.Header {
		h[k] = v
	}
	if m.MsgID != "" {
		h.Set(jetstream.MsgIDHeader, m.MsgID)
	}
	if c.cfg.Stream != "" {
		h.Set(jetstream.ExpectedStreamHeader, c.cfg.Stream)
	}
	return &nats.Msg{Subject: c.cfg.Subject, Header: h, Data: m.Data}
}
