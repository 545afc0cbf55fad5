package producer

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of the producer spans.
const scope = "github.com/codearts-recover-worker/codearts-recover-worker/producer"

// startSpan starts the producer span of m (kind producer, named "send
// SUBJECT"), injects its context into header and returns the span.
// newRoot makes it the root of its own trace, linked to ctx's span: a
// batch's requests are a trace each, not one trace of thousands. With a
// no-op tracer (tracing off) and no span in ctx, nothing is injected.
func (c *Client) startSpan(ctx context.Context, m *Message, header map[string][]string, newRoot bool) trace.Span {
	var opts []trace.SpanStartOption
	if newRoot {
		opts = append(opts, trace.WithNewRoot())
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := c.tracer.Start(ctx, c.spanName, append(opts, trace.WithSpanKind(trace.SpanKindProducer))...)
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", c.cfg.Subject))
		if m.MsgID != "" {
			attrs = append(attrs, attribute.String("messaging.message.id", m.MsgID))
		}
		if m.JobID != "" {
			attrs = append(attrs, attribute.String("job_id", m.JobID))
		}
		span.SetAttributes(attrs...)
	}
	propagation.TraceContext{}.Inject(ctx, headerCarrier(header))
	return span
}

// endSpan ends a producer span once the publish's fate is known.
func endSpan(span trace.Span, seq uint64, duplicate bool, err error) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int64("stream_seq", int64(seq)), attribute.Bool("duplicate", duplicate)) //nolint:gosec // a stream sequence
		}
	}
	span.End()
}

// headerCarrier adapts NATS headers to propagation.TextMapCarrier. NATS
// header names are case-sensitive: Set replaces the key in any case and
// writes it as given (lowercase); Get finds it in any case.
type headerCarrier map[string][]string

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
