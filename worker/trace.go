package worker

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceparentHeader is the W3C Trace Context header that carries a
// request's trace in its NATS headers. NATS header names are case-sensitive:
// producers send it lowercase (the W3C form, what enqueue sends) or as
// "Traceparent" (Go's propagation.HeaderCarrier); the worker reads any case.
const TraceparentHeader = "traceparent"

// tracerName is the instrumentation scope of the pool's spans.
const tracerName = "github.com/codearts-recover-worker/codearts-recover-worker/worker"

// minWaitEvent is the shortest wait (rate limiter, breaker, pause) recorded
// as an event on the delivery span: shorter ones are noise.
const minWaitEvent = time.Millisecond

// Span attribute keys. Where OpenTelemetry's semantic conventions have a
// key (messaging, HTTP client, server, URL, error), it is theirs, from the
// semconv package of the otel version in go.mod. The worker's own keys are
// the snake_case ones of the logs and the dead letters under the namespace
// "codearts_recover." (AttrNamespace): one component, as the metrics'
// codearts_recover_ prefix, so a key names the worker in traces as in
// metrics, and no future OpenTelemetry namespace ("codearts" could become
// one for the cloud service) can clash with it.
const (
	attrJobID      = attribute.Key(AttrNamespace + "job_id")
	attrStreamSeq  = attribute.Key(AttrNamespace + "stream_seq")
	attrDelivery   = attribute.Key(AttrNamespace + "delivery")
	attrAttempt    = attribute.Key(AttrNamespace + "attempt")
	attrAttempts   = attribute.Key(AttrNamespace + "attempts")
	attrErrorCode  = attribute.Key(AttrNamespace + "error_code")
	attrRequestID  = attribute.Key(AttrNamespace + "request_id")
	attrClass      = attribute.Key(AttrNamespace + "class")
	attrOutcome    = attribute.Key(AttrNamespace + "outcome")
	attrReason     = attribute.Key(AttrNamespace + "reason")
	attrRetryCause = attribute.Key(AttrNamespace + "retry_cause")
	attrRetryWait  = attribute.Key(AttrNamespace + "retry_wait") // seconds
	attrWait       = attribute.Key(AttrNamespace + "wait")       // seconds
	attrProbe      = attribute.Key(AttrNamespace + "probe")
	attrDerived    = attribute.Key(AttrNamespace + "trace_derived")
)

// AttrNamespace prefixes the worker's own span attribute keys.
const AttrNamespace = "codearts_recover."

// MessagingSystem is the messaging.system of the worker's and the
// producer's spans: the conventions list no NATS value, so NATS's name.
const MessagingSystem = "nats"

// CallURLTemplate is the API call's url.template: the path with its
// parameter, not the job id (low cardinality).
const CallURLTemplate = "/v3/jobs/{job_id}/recover"

// CallSpanName is the name of the span of one API call: the API's method
// and path template (low cardinality, as OpenTelemetry's HTTP client
// conventions name spans).
const CallSpanName = "POST " + CallURLTemplate

// natsCarrier adapts NATS message headers to propagation.TextMapCarrier.
// NATS header names are case-sensitive, and producers write
// "traceparent" (W3C) or "Traceparent" (net/http's canonical form): Get
// finds a name in any case; Set writes it as given (lowercase).
type natsCarrier map[string][]string

var _ propagation.TextMapCarrier = natsCarrier(nil)

// Get returns the first value of key, matched in any case.
func (c natsCarrier) Get(key string) string {
	v, _ := headerValue(c, key)
	return v
}

// Set replaces key (in any case) with value.
func (c natsCarrier) Set(key, value string) {
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys lists the header names.
func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectTrace writes the span context of ctx into NATS headers as W3C
// traceparent (and tracestate), replacing any in another case. It does
// nothing when ctx holds no valid span context.
func InjectTrace(ctx context.Context, header map[string][]string) {
	propagation.TraceContext{}.Inject(ctx, natsCarrier(header))
}

// ProducerTrace returns the span context a producer put in the message's
// traceparent header (any case), or an invalid one when there is none or it
// is malformed.
func ProducerTrace(header map[string][]string) trace.SpanContext {
	if len(header) == 0 || natsCarrier(header).Get(TraceparentHeader) == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), natsCarrier(header)))
}

// RequestTrace returns the remote span context under which the worker's
// spans for a request are started, and whether it was derived:
//   - the producer's traceparent, when the message carries a valid one:
//     the request's spans join the producer's trace;
//   - otherwise one derived from the request's stream sequence and store
//     time (the pair that names its dead letter), the same on every
//     delivery and in every worker process, so all deliveries of a request,
//     across naks, crashes and replicas, land in one trace.
//
// A derived parent is marked sampled, so a parent-based sampler (the
// default) records every such request; OTEL_TRACES_SAMPLER=traceidratio
// samples them by trace id instead, which is the same decision on every
// delivery. The derived parent span itself is never recorded: viewers show
// the deliveries as children of a missing root.
func RequestTrace(header map[string][]string, seq uint64, stored time.Time) (sc trace.SpanContext, derived bool) {
	if sc := ProducerTrace(header); sc.IsValid() {
		return sc, false
	}
	return DerivedTrace(seq, stored), true
}

// DerivedTrace is the span context RequestTrace derives for a request
// stored at seq at time stored when it carries no traceparent.
func DerivedTrace(seq uint64, stored time.Time) trace.SpanContext {
	var in [len("codearts-recover-worker/trace/") + 16]byte
	n := copy(in[:], "codearts-recover-worker/trace/")
	binary.BigEndian.PutUint64(in[n:], seq)
	binary.BigEndian.PutUint64(in[n+8:], uint64(stored.UnixNano()))
	sum := sha256.Sum256(in[:])
	var cfg trace.SpanContextConfig
	copy(cfg.TraceID[:], sum[:16])
	copy(cfg.SpanID[:], sum[16:24])
	// All-zero ids are invalid; a hash is never that, but make sure.
	cfg.TraceID[0] |= sum[24] | 1
	cfg.SpanID[0] |= sum[25] | 1
	cfg.TraceFlags = trace.FlagsSampled
	cfg.Remote = true
	return trace.NewSpanContext(cfg)
}

// taskTrace is a delivery's tracing state. A task has none when tracing is
// off and the producer sent no traceparent, so that case costs one pointer.
type taskTrace struct {
	// sc is the request's trace: this delivery's span, or with tracing off
	// the producer's traceparent.
	sc      trace.SpanContext
	tid     string     // sc's trace id in hex, built on first use
	span    trace.Span // nil with tracing off
	call    trace.Span // the API call whose retry is being decided
	callEnd time.Time  // when the API answered
	traced  bool       // the outcome is on span
}

// startDelivery starts the span of one delivery (kind consumer) under the
// request's trace.
func (p *Pool) startDelivery(ctx context.Context, t *task) {
	p.startSpan(ctx, t, "process ", trace.SpanKindConsumer,
		semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"))
}

// startStranded starts the span of dead-lettering a stranded request
// (reached MaxDeliver without finishing) in the request's trace.
func (p *Pool) startStranded(ctx context.Context, t *task) {
	p.startSpan(ctx, t, "dead_letter ", trace.SpanKindInternal)
}

// startSpan starts t's span, named verb + subject, under the request's
// trace (as RequestTrace, with the configured propagator). With tracing off
// it only reads a producer's W3C traceparent, so the request's logs and records still name its
// trace. Attributes are set only on a span that records.
func (p *Pool) startSpan(ctx context.Context, t *task, verb string, kind trace.SpanKind, extra ...attribute.KeyValue) {
	if p.tr == nil {
		if sc := ProducerTrace(t.d.Header()); sc.IsValid() { //nolint:contextcheck // parsing a header needs no context
			t.trace = &taskTrace{sc: sc}
		}
		return
	}
	// The producer's context as Config.Propagator reads it (W3C trace
	// context by default; none reads nothing, so every request gets its
	// derived trace).
	pctx := p.propagator().Extract(ctx, natsCarrier(t.d.Header()))
	parent, derived := trace.SpanContextFromContext(pctx), false
	if !parent.IsValid() {
		parent, derived = DerivedTrace(t.seq, t.stored), true
	}
	subject := t.d.Subject()
	_, span := p.tr.Start(trace.ContextWithRemoteSpanContext(pctx, parent), verb+subject,
		trace.WithSpanKind(kind), trace.WithTimestamp(t.start))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String(MessagingSystem), semconv.MessagingDestinationName(subject),
			semconv.MessagingMessageBodySize(len(t.d.Body())),
			attrStreamSeq.Int64(int64(t.seq)), attrDelivery.Int64(int64(t.n)), //nolint:gosec // counts
			attrDerived.Bool(derived))
		if p.cfg.Consumer != "" {
			span.SetAttributes(semconv.MessagingConsumerGroupName(p.cfg.Consumer))
		}
		// The producer's message id (the enqueue command sets the job id):
		// the same messaging.message.id as on the producer's send span.
		if id, ok := headerValue(t.d.Header(), "Nats-Msg-Id"); ok && id != "" {
			span.SetAttributes(semconv.MessagingMessageID(id))
		}
		span.SetAttributes(extra...)
	}
	t.trace = &taskTrace{sc: span.SpanContext(), span: span}
}

// propagator reads a producer's context from a request's headers.
func (p *Pool) propagator() propagation.TextMapPropagator {
	if p.cfg.Propagator != nil {
		return p.cfg.Propagator
	}
	return propagation.TraceContext{}
}

// span is the delivery's span, nil with tracing off.
func (t *task) span() trace.Span {
	if t.trace == nil {
		return nil
	}
	return t.trace.span
}

// recording is the delivery's span when it records (sampled), else nil:
// an unsampled span is still made and ended, so its ids propagate, but
// gets no attributes or events.
func (t *task) recording() trace.Span {
	if s := t.span(); s != nil && s.IsRecording() {
		return s
	}
	return nil
}

// endStranded ends the span of a stranded request's sweep.
func (p *Pool) endStranded(t *task) {
	if s := t.span(); s != nil {
		s.End()
	}
}

// traceFailed marks the span of a sweep that must be retried.
func (t *task) traceFailed(err error) {
	if s := t.recording(); s != nil {
		s.SetStatus(codes.Error, err.Error())
	}
}

// traceDecoded names the job on the delivery span.
func (t *task) traceDecoded() {
	if s := t.recording(); s != nil && t.req.JobID != "" {
		s.SetAttributes(attrJobID.String(t.req.JobID))
	}
}

// traceOutcome records how the delivery ended.
func (p *Pool) traceOutcome(t *task, kind, reason string) {
	s := t.recording()
	if s == nil {
		return
	}
	t.trace.traced = true
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, attrOutcome.String(kind), attrAttempts.Int(p.attempts(t)))
	if reason != "" {
		attrs = append(attrs, attrReason.String(reason))
	}
	s.SetAttributes(attrs...)
	switch kind {
	case OutcomeDeadLettered:
		s.SetStatus(codes.Error, "dead-lettered: "+reason)
	case OutcomeAckFailed:
		s.SetStatus(codes.Error, "ack not confirmed")
	case OutcomeHandedBack:
		if reason == "dead_letter_failed" || reason == "result_failed" {
			s.SetStatus(codes.Error, reason)
		}
	}
}

// endDelivery ends the delivery span (and an attempt span still open). A
// delivery that reported no outcome panicked: its handling is handed back.
func (p *Pool) endDelivery(t *task) {
	s := t.span()
	if s == nil {
		return
	}
	p.endCall(t)
	if !t.trace.traced && s.IsRecording() {
		s.SetAttributes(attrOutcome.String(OutcomeHandedBack), attrReason.String("panic"))
		s.SetStatus(codes.Error, "panic while handling the request")
	}
	s.End()
}

// callContext starts the span of one API call (kind client), a child of
// the delivery span, and returns the context to call the API with. With
// tracing off it returns ctx as it is.
func (p *Pool) callContext(ctx context.Context, t *task, attempt int, probe bool) context.Context {
	s := t.span()
	if s == nil {
		return ctx
	}
	ctx, t.trace.call = p.tr.Start(trace.ContextWithSpan(ctx, s), CallSpanName, trace.WithSpanKind(trace.SpanKindClient))
	if t.trace.call.IsRecording() {
		t.trace.call.SetAttributes(semconv.HTTPRequestMethodPost, semconv.URLTemplate(CallURLTemplate), attrAttempt.Int(attempt))
		if attempt > 1 {
			// Every try after the first is a resend of the same request,
			// whichever delivery makes it.
			t.trace.call.SetAttributes(semconv.HTTPRequestResendCount(attempt - 1))
		}
		if t.req.JobID != "" {
			t.trace.call.SetAttributes(attrJobID.String(t.req.JobID))
		}
		if probe {
			t.trace.call.SetAttributes(attrProbe.Bool(true))
		}
	}
	return ctx
}

// traceCall records the API's answer on the call span. The span stays open
// until the retry decision is known (endCall), but ends at the answer's
// time.
func (t *task) traceCall(class string, err error) {
	if t.trace == nil || t.trace.call == nil || !t.trace.call.IsRecording() {
		return
	}
	t.trace.callEnd = time.Now()
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attrClass.String(class))
	if t.status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(t.status))
	}
	if t.errorCode != "" {
		attrs = append(attrs, attrErrorCode.String(t.errorCode))
	}
	if t.requestID != "" {
		attrs = append(attrs, attrRequestID.String(t.requestID))
	}
	if err != nil {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(t.status, t.errorCode, class)))
		msg := t.errorMsg
		if t.errorCode != "" {
			msg = t.errorCode + ": " + msg
		}
		t.trace.call.SetStatus(codes.Error, msg)
	}
	t.trace.call.SetAttributes(attrs...)
}

// errorType is a failed call's error.type, low cardinality as the HTTP
// client conventions ask: the status code when the API answered 4xx/5xx,
// the API's error code when a 2xx said "fail", else the worker's class of
// the failure (transient for a connection error or timeout, canceled).
func errorType(status int, errorCode, class string) string {
	switch {
	case status >= 400:
		return strconv.Itoa(status)
	case errorCode != "":
		return errorCode
	case class != "":
		return class
	default:
		return semconv.ErrorTypeOther.Value.AsString()
	}
}

// traceRetry records on the call span why the request is tried again and
// how long it waits first.
func (t *task) traceRetry(cause string, wait time.Duration) {
	if t.trace == nil || t.trace.call == nil || !t.trace.call.IsRecording() {
		return
	}
	t.trace.call.SetAttributes(attrRetryCause.String(cause), attrRetryWait.Float64(wait.Seconds()))
}

// endCall ends the open call span, if any, at the time of the API's answer.
func (p *Pool) endCall(t *task) {
	if t.trace == nil || t.trace.call == nil {
		return
	}
	end := t.trace.callEnd
	if end.IsZero() {
		end = time.Now()
	}
	t.trace.call.End(trace.WithTimestamp(end))
	t.trace.call, t.trace.callEnd = nil, time.Time{}
}

// waitStart returns now when tracing, for traceWait.
func (t *task) waitStart() time.Time {
	if t.recording() == nil {
		return time.Time{}
	}
	return time.Now()
}

// traceWait adds an event to the delivery span for a wait that began at
// since (from waitStart) and lasted at least minWaitEvent.
func (t *task) traceWait(name string, since time.Time) {
	s := t.recording()
	if s == nil || since.IsZero() {
		return
	}
	if d := time.Since(since); d >= minWaitEvent {
		s.AddEvent(name, trace.WithTimestamp(since), trace.WithAttributes(attrWait.Float64(d.Seconds())))
	}
}

// traceEvent adds a named event to the delivery span.
func (t *task) traceEvent(name string, attrs ...attribute.KeyValue) {
	if s := t.recording(); s != nil {
		s.AddEvent(name, trace.WithAttributes(attrs...))
	}
}

// traceID is the request's trace id in hex, "" when unknown (tracing off
// and no traceparent from the producer).
func (t *task) traceID() string {
	if t.trace == nil {
		return ""
	}
	if t.trace.tid == "" && t.trace.sc.HasTraceID() {
		t.trace.tid = t.trace.sc.TraceID().String()
	}
	return t.trace.tid
}

// spanID is the id of this delivery's span, "" with tracing off.
func (t *task) spanID() string {
	if t.span() == nil || !t.trace.sc.HasSpanID() {
		return ""
	}
	return t.trace.sc.SpanID().String()
}

// ContinueTrace makes a replay of d join d's trace: it adds to h, the
// replay's headers, a traceparent whose parent is the span that
// dead-lettered d, unless h carries a traceparent already (the producer's,
// kept as it was). Without it a request whose trace was derived from its
// stream sequence would start a new trace under the replay's sequence.
func (d *DeadLetter) ContinueTrace(h map[string][]string) {
	if natsCarrier(h).Get(TraceparentHeader) != "" {
		return
	}
	tid, err := trace.TraceIDFromHex(d.TraceID)
	if err != nil {
		return
	}
	sid, err := trace.SpanIDFromHex(d.SpanID)
	if err != nil {
		return
	}
	// W3C trace context, version 00, sampled: what InjectTrace would write
	// for this parent, without a context to carry it.
	natsCarrier(h).Set(TraceparentHeader, "00-"+tid.String()+"-"+sid.String()+"-01")
}
