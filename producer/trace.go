package producer

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of the producer spans.
const scope = "github.com/codearts-recover-worker/codearts-recover-worker/producer"

// The producer's own span attributes, in the worker's namespace
// (worker.AttrNamespace, "codearts_recover."): the same keys on the send
// span as on the delivery spans that follow it.
const (
	attrJobID     = attribute.Key("codearts_recover.job_id")
	attrStreamSeq = attribute.Key("codearts_recover.stream_seq")
	attrDuplicate = attribute.Key("codearts_recover.duplicate")
)

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
		attrs := make([]attribute.KeyValue, 0, 7)
		attrs = append(attrs, semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"), semconv.MessagingDestinationName(c.cfg.Subject),
			semconv.MessagingMessageBodySize(len(m.Data)))
		if m.MsgID != "" {
			attrs = append(attrs, semconv.MessagingMessageID(m.MsgID))
		}
		if m.JobID != "" {
			attrs = append(attrs, attrJobID.String(m.JobID))
		}
		span.SetAttributes(attrs...)
	}
	c.cfg.Propagator.Inject(ctx, headerCarrier(header))
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
			span.SetAttributes(attrStreamSeq.Int64(int64(seq)), attrDuplicate.Bool(duplicate)) //nolint:gosec // a stream sequence
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
