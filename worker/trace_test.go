package worker_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// spanAttr returns the value of key on s, and whether it is there.
func spanAttr(s tracetest.SpanStub, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func attrInt(t *testing.T, s tracetest.SpanStub, key string) int64 {
	t.Helper()
	v, ok := spanAttr(s, key)
	require.True(t, ok, "span %q has no %s", s.Name, key)
	return v.AsInt64()
}

func attrString(s tracetest.SpanStub, key string) string {
	v, _ := spanAttr(s, key)
	return v.AsString()
}

// producerHeader is a traceparent as a producer would send it, under the
// header name given.
func producerHeader(name string) (nats.Header, trace.SpanContext) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, name[0]},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		// Sampled, as a traced producer's: the worker's parent-based
		// default sampler follows the producer's decision.
		TraceFlags: trace.FlagsSampled,
	})
	h := nats.Header{}
	h[name] = []string{"00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"}
	return h, sc
}

// One trace per request, however many deliveries and API calls it takes;
// each API call is a child span of its delivery's span with the answer's
// facts; dead letters, result events and log lines name the trace; a
// producer's traceparent (lowercase or canonical) is honoured.
func TestTracing(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
	}})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })

	type want struct {
		outcome    string
		reason     string
		deliveries int
		statuses   []int // of the API calls, in order
		producer   trace.SpanContext
	}
	var (
		wants = map[string]want{} // by body
		pub   = func(body string, h nats.Header, w want) {
			t.Helper()
			_, err := env.Conn.Publish(context.Background(), env.Conn.Config().Subject, "", h, []byte(body))
			require.NoError(t, err)
			wants[body] = w
		}
	)
	for range 3 {
		pub(testenv.JobID("a"), nil, want{outcome: worker.OutcomeRecovered, deliveries: 1, statuses: []int{200}})
	}
	retried := testenv.JobID("b")
	env.Sim.Script(retried, 500, 503)
	pub(retried, nil, want{outcome: worker.OutcomeRecovered, deliveries: 1, statuses: []int{500, 503, 200}})
	redelivered := testenv.JobID("c")
	env.Sim.Script(redelivered, 500, 502, 503)
	pub(redelivered, nil, want{outcome: worker.OutcomeRecovered, deliveries: 2, statuses: []int{500, 502, 503, 200}})
	notFound := testenv.JobID("404")
	pub(notFound, nil, want{outcome: worker.OutcomeDeadLettered, reason: worker.ReasonClientError, deliveries: 1, statuses: []int{404}})
	pub("not-a-job", nil, want{outcome: worker.OutcomeDeadLettered, reason: worker.ReasonInvalidRequest, deliveries: 1})
	h, sc := producerHeader("traceparent")
	pub(testenv.JobID("d"), h, want{outcome: worker.OutcomeRecovered, deliveries: 1, statuses: []int{200}, producer: sc})
	h, sc = producerHeader("Traceparent")
	pub(testenv.JobID("404"), h, want{outcome: worker.OutcomeDeadLettered, reason: worker.ReasonClientError, deliveries: 1, statuses: []int{404}, producer: sc})
	n := len(wants)

	logs, logged := observer.New(zapcore.WarnLevel)
	rec := testenv.NewRecorder()
	cfg := poolConfig(rec)
	cfg.Tracer = tp
	cfg.Logger = zap.New(logs)
	run := env.Start(env.Pool(nil, cfg))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() == n }, "terminal %d of %d", rec.Terminal, n)
	run.Stop(t) // every delivery span has ended

	simURL, err := url.Parse(env.Sim.URL())
	require.NoError(t, err)
	simHost := simURL.Hostname()
	simPort, err := strconv.ParseInt(simURL.Port(), 10, 64)
	require.NoError(t, err)

	// Index the spans: deliveries by stream sequence, calls by parent.
	spans := exp.GetSpans()
	deliveries := map[int64][]tracetest.SpanStub{}
	calls := map[trace.SpanID][]tracetest.SpanStub{}
	traces := map[trace.TraceID]bool{}
	for _, s := range spans {
		traces[s.SpanContext.TraceID()] = true
		switch s.Name {
		case "process " + env.Conn.Config().Subject:
			require.Equal(t, trace.SpanKindConsumer, s.SpanKind)
			require.Equal(t, "nats", attrString(s, "messaging.system"))
			require.Equal(t, env.Conn.Config().Subject, attrString(s, "messaging.destination.name"))
			require.Equal(t, env.Conn.Config().Consumer, attrString(s, "messaging.consumer.group.name"))
			require.Equal(t, "process", attrString(s, "messaging.operation.type"))
			require.Equal(t, "process", attrString(s, "messaging.operation.name"))
			require.Positive(t, attrInt(t, s, "messaging.message.body.size"))
			require.True(t, s.Parent.IsRemote(), "a delivery's parent is the producer's or the derived remote span")
			seq := attrInt(t, s, "codearts_recover.stream_seq")
			deliveries[seq] = append(deliveries[seq], s)
		case worker.CallSpanName:
			require.Equal(t, trace.SpanKindClient, s.SpanKind)
			calls[s.Parent.SpanID()] = append(calls[s.Parent.SpanID()], s)
		default:
			t.Fatalf("unexpected span %q", s.Name)
		}
	}
	require.Len(t, deliveries, n, "delivery spans for every request")
	require.Len(t, traces, n, "one trace per request")

	dls := map[uint64]worker.DeadLetter{}
	for _, d := range env.DeadLetters() {
		dls[d.Original.StreamSeq] = d
	}
	results := map[uint64]worker.Result{}
	for _, r := range env.Results() {
		results[r.StreamSeq] = r
	}
	require.Len(t, results, n)
	warned := map[string]string{} // trace_id of each "dead-lettered" line, by job id or ""
	for _, e := range logged.FilterMessage("dead-lettered").All() {
		f := e.ContextMap()
		job, _ := f["job_id"].(string)
		tid, _ := f["trace_id"].(string)
		warned[job] = tid
	}

	for seq, ds := range deliveries {
		body := ""
		var final tracetest.SpanStub
		for _, d := range ds {
			if int64(len(ds)) == attrInt(t, d, "codearts_recover.delivery") {
				final = d
			}
		}
		require.NotEmpty(t, final.Name, "seq %d: last delivery's span", seq)
		r, ok := results[uint64(seq)]
		require.True(t, ok, "seq %d: result event", seq)
		body = r.JobID
		if r.Reason == worker.ReasonInvalidRequest {
			body = "not-a-job"
		}
		w, ok := wants[body]
		require.True(t, ok, "seq %d: a request we published (%q)", seq, body)
		require.Len(t, ds, w.deliveries, "%s: deliveries", body)

		tid := ds[0].SpanContext.TraceID()
		for _, d := range ds {
			require.Equal(t, tid, d.SpanContext.TraceID(), "%s: every delivery in one trace", body)
			require.Equal(t, ds[0].Parent.SpanID(), d.Parent.SpanID(), "%s: every delivery under one parent", body)
		}
		if w.producer.IsValid() {
			require.Equal(t, w.producer.TraceID(), tid, "%s: the producer's trace id is kept", body)
			require.Equal(t, w.producer.SpanID(), final.Parent.SpanID(), "%s: child of the producer's span", body)
			v, _ := spanAttr(final, "codearts_recover.trace_derived")
			require.False(t, v.AsBool(), "%s: not derived", body)
		} else {
			v, _ := spanAttr(final, "codearts_recover.trace_derived")
			require.True(t, v.AsBool(), "%s: derived trace", body)
		}
		require.Equal(t, w.outcome, attrString(final, "codearts_recover.outcome"), "%s: outcome", body)
		require.Equal(t, w.reason, attrString(final, "codearts_recover.reason"), "%s: reason", body)
		if w.outcome == worker.OutcomeDeadLettered {
			require.Equal(t, codes.Error, final.Status.Code)
		} else {
			require.NotEqual(t, codes.Error, final.Status.Code)
		}
		if w.deliveries > 1 {
			require.Equal(t, worker.OutcomeHandedBack, attrString(ds[0], "codearts_recover.outcome"))
			require.Equal(t, "retries_of_delivery_used", attrString(ds[0], "codearts_recover.reason"))
		}

		// The API calls: children of their delivery, numbered across
		// deliveries, with the answer's facts.
		var got []tracetest.SpanStub
		for d := range len(ds) {
			for _, s := range ds {
				if attrInt(t, s, "codearts_recover.delivery") == int64(d+1) {
					for _, c := range calls[s.SpanContext.SpanID()] {
						require.Equal(t, tid, c.SpanContext.TraceID())
						got = append(got, c)
					}
				}
			}
		}
		require.Len(t, got, len(w.statuses), "%s: API call spans", body)
		for i, c := range got {
			status := w.statuses[i]
			require.Equal(t, int64(i+1), attrInt(t, c, "codearts_recover.attempt"), "%s: attempt numbers", body)
			require.Equal(t, int64(status), attrInt(t, c, "http.response.status_code"))
			// OpenTelemetry's HTTP client conventions.
			require.Equal(t, "POST", attrString(c, "http.request.method"))
			require.Equal(t, "/v3/jobs/{job_id}/recover", attrString(c, "url.template"))
			require.Equal(t, simHost, attrString(c, "server.address"))
			require.Equal(t, simPort, attrInt(t, c, "server.port"))
			if resend, ok := spanAttr(c, "http.request.resend_count"); i == 0 {
				require.False(t, ok, "%s: a first try is no resend", body)
			} else {
				require.Equal(t, int64(i), resend.AsInt64(), "%s: resends count across deliveries", body)
			}
			if status == http.StatusOK {
				_, ok := spanAttr(c, "error.type")
				require.False(t, ok, "%s: no error.type on a success", body)
			} else {
				require.Equal(t, strconv.Itoa(status), attrString(c, "error.type"), "%s: error.type is the status code", body)
			}
			require.NotEmpty(t, attrString(c, "codearts_recover.request_id"), "%s: the API's request id", body)
			require.False(t, c.EndTime.Before(c.StartTime))
			if status == http.StatusOK {
				require.Equal(t, "success", attrString(c, "codearts_recover.class"))
				require.NotEqual(t, codes.Error, c.Status.Code)
				continue
			}
			require.Equal(t, codes.Error, c.Status.Code, "%s: a failed call's span is an error", body)
			require.Equal(t, codeartssim.StandardOutcome(status).Code, attrString(c, "codearts_recover.error_code"))
			if status >= 500 {
				cause := attrString(c, "codearts_recover.retry_cause")
				require.Contains(t, []string{"transient", "redelivery"}, cause)
				wait, ok := spanAttr(c, "codearts_recover.retry_wait")
				require.True(t, ok, "%s: a retried call says how long the retry waits", body)
				require.Positive(t, wait.AsFloat64())
			}
		}

		// The records name the trace and the span that finished it.
		require.Equal(t, tid.String(), r.TraceID, "%s: result event trace_id", body)
		require.Equal(t, final.SpanContext.SpanID().String(), r.SpanID)
		if w.outcome == worker.OutcomeDeadLettered {
			d, ok := dls[uint64(seq)]
			require.True(t, ok, "%s: dead letter", body)
			require.Equal(t, tid.String(), d.TraceID, "%s: dead letter trace_id", body)
			require.Equal(t, final.SpanContext.SpanID().String(), d.SpanID)
			require.Equal(t, tid.String(), warned[d.JobID], "%s: the dead-lettered log line carries trace_id", body)
			require.True(t, hasEvent(final, "dead_letter_stored"))
		}
	}
	require.Len(t, dls, 3)
}

// Config.Propagator decides what a producer's headers contribute: the
// default W3C trace context joins the producer's trace; an empty composite
// (OTEL_PROPAGATORS=none) reads nothing, so the request gets its derived
// trace; the message id reaches messaging.message.id either way.
func TestTracePropagator(t *testing.T) {
	for _, tt := range []struct {
		name        string
		give        propagation.TextMapPropagator
		wantDerived bool
	}{
		{name: "default", give: nil},
		{name: "tracecontext and baggage", give: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})},
		{name: "none", give: propagation.NewCompositeTextMapPropagator(), wantDerived: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })
			job := testenv.JobID("a")
			h, sc := producerHeader("traceparent")
			h.Set("baggage", "campaign=outage-7")
			_, err := env.Conn.Publish(context.Background(), env.Conn.Config().Subject, "msg-"+job, h, []byte(job))
			require.NoError(t, err)
			rec := testenv.NewRecorder()
			cfg := poolConfig(rec)
			cfg.Tracer, cfg.Propagator = tp, tt.give
			run := env.Start(env.Pool(nil, cfg))
			testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() == 1 }, "terminal")
			run.Stop(t)

			var process []tracetest.SpanStub
			for _, s := range exp.GetSpans() {
				if s.SpanKind == trace.SpanKindConsumer {
					process = append(process, s)
				}
			}
			require.Len(t, process, 1)
			p := process[0]
			v, _ := spanAttr(p, "codearts_recover.trace_derived")
			require.Equal(t, tt.wantDerived, v.AsBool())
			if tt.wantDerived {
				require.NotEqual(t, sc.TraceID(), p.SpanContext.TraceID(), "the producer's trace is not read")
			} else {
				require.Equal(t, sc.TraceID(), p.SpanContext.TraceID(), "the producer's trace is joined")
				require.Equal(t, sc.SpanID(), p.Parent.SpanID())
			}
			require.Equal(t, "msg-"+job, attrString(p, "messaging.message.id"))
		})
	}
}

func hasEvent(s tracetest.SpanStub, name string) bool {
	for _, e := range s.Events {
		if e.Name == name {
			return true
		}
	}
	return false
}

// With tracing off the pool makes no span, but a producer's trace id still
// reaches the dead letter and the result event; without one there is none.
func TestTraceIDWithTracingOff(t *testing.T) {
	env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
	}})
	traced, untraced := testenv.JobID("404"), testenv.JobID("404")
	h, sc := producerHeader("traceparent")
	_, err := env.Conn.Publish(context.Background(), env.Conn.Config().Subject, "", h, []byte(traced))
	require.NoError(t, err)
	env.Publish(untraced, untraced)
	rec := testenv.NewRecorder()
	env.Start(env.Pool(nil, poolConfig(rec)))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() == 2 }, "terminal")

	byJob := map[string]worker.DeadLetter{}
	for _, d := range env.DeadLetters() {
		byJob[d.JobID] = d
	}
	require.Len(t, byJob, 2)
	require.Len(t, env.Results(), 2)
	require.Equal(t, sc.TraceID().String(), byJob[traced].TraceID)
	require.Empty(t, byJob[traced].SpanID, "no span of the worker's")
	require.Empty(t, byJob[untraced].TraceID)
	// The original traceparent stays in the record, for dlq replay.
	require.Equal(t, h["traceparent"], byJob[traced].Original.Headers["traceparent"])
	for _, r := range env.Results() {
		if r.JobID == traced {
			require.Equal(t, sc.TraceID().String(), r.TraceID)
		} else {
			require.Empty(t, r.TraceID)
		}
	}
}

func TestRequestTrace(t *testing.T) {
	stored := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	wantTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	derived := worker.DerivedTrace(42, stored)
	tests := []struct {
		name        string
		giveHeader  map[string][]string
		wantTraceID trace.TraceID
		wantDerived bool
	}{
		{name: "none", giveHeader: nil, wantTraceID: derived.TraceID(), wantDerived: true},
		{name: "other headers", giveHeader: map[string][]string{"Nats-Msg-Id": {"x"}}, wantTraceID: derived.TraceID(), wantDerived: true},
		{name: "lowercase", giveHeader: map[string][]string{"traceparent": {valid}}, wantTraceID: wantTrace},
		{name: "canonical", giveHeader: map[string][]string{"Traceparent": {valid}}, wantTraceID: wantTrace},
		{name: "upper case", giveHeader: map[string][]string{"TRACEPARENT": {valid}}, wantTraceID: wantTrace},
		{name: "malformed", giveHeader: map[string][]string{"traceparent": {"00-zz-00f067aa0ba902b7-01"}}, wantTraceID: derived.TraceID(), wantDerived: true},
		{name: "all-zero trace id", giveHeader: map[string][]string{"traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}, wantTraceID: derived.TraceID(), wantDerived: true},
		{name: "empty value", giveHeader: map[string][]string{"traceparent": {""}}, wantTraceID: derived.TraceID(), wantDerived: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, isDerived := worker.RequestTrace(tt.giveHeader, 42, stored)
			require.True(t, sc.IsValid())
			require.True(t, sc.IsRemote())
			require.True(t, sc.IsSampled())
			require.Equal(t, tt.wantTraceID, sc.TraceID())
			require.Equal(t, tt.wantDerived, isDerived)
		})
	}

	// Derived ids are a function of (seq, store time) only: the same in
	// every process, different for another request.
	require.Equal(t, derived, worker.DerivedTrace(42, stored))
	require.NotEqual(t, derived.TraceID(), worker.DerivedTrace(43, stored).TraceID())
	require.NotEqual(t, derived.TraceID(), worker.DerivedTrace(42, stored.Add(time.Nanosecond)).TraceID())
	require.NotEqual(t, derived.SpanID(), worker.DerivedTrace(43, stored).SpanID())
}

// InjectTrace writes the W3C lowercase name and replaces a traceparent in
// another case, so a message never carries two.
func TestInjectTrace(t *testing.T) {
	sc := worker.DerivedTrace(7, time.Unix(0, 1))
	h := map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "Nats-Msg-Id": {"x"}}
	worker.InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), h)
	require.Len(t, h, 2)
	require.Equal(t, []string{"00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"}, h["traceparent"])
	require.Equal(t, sc.TraceID(), worker.ProducerTrace(h).TraceID())

	// Go producers using propagation.HeaderCarrier are read as well.
	h2 := map[string][]string{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h2))
	require.Contains(t, h2, "Traceparent")
	require.Equal(t, sc.TraceID(), worker.ProducerTrace(h2).TraceID())

	// Nothing to inject: the header is left alone.
	h3 := map[string][]string{}
	worker.InjectTrace(context.Background(), h3)
	require.Empty(t, h3)
}

func TestContinueTrace(t *testing.T) {
	const (
		tid  = "4bf92f3577b34da6a3ce929d0e0e4736"
		sid  = "00f067aa0ba902b7"
		prod = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	)
	tests := []struct {
		name       string
		giveRecord worker.DeadLetter
		giveHeader map[string][]string
		want       string
	}{
		{name: "derived trace continues", giveRecord: worker.DeadLetter{TraceID: tid, SpanID: sid},
			giveHeader: map[string][]string{}, want: "00-" + tid + "-" + sid + "-01"},
		{name: "producer's traceparent kept", giveRecord: worker.DeadLetter{TraceID: tid, SpanID: sid},
			giveHeader: map[string][]string{"Traceparent": {prod}}, want: ""},
		{name: "no trace", giveRecord: worker.DeadLetter{}, giveHeader: map[string][]string{}, want: ""},
		{name: "no span", giveRecord: worker.DeadLetter{TraceID: tid}, giveHeader: map[string][]string{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.giveHeader)
			tt.giveRecord.ContinueTrace(tt.giveHeader)
			if tt.want == "" {
				require.Len(t, tt.giveHeader, before, "headers untouched")
				return
			}
			require.Equal(t, []string{tt.want}, tt.giveHeader["traceparent"])
		})
	}
}
