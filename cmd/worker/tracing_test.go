package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

func TestParseOTelEnv(t *testing.T) {
	tests := []struct {
		name          string
		giveEnv       map[string]string
		wantOn        bool
		wantExporters []string
		wantProtocol  string
		wantEndpoint  string
		wantSampler   string
		wantProps     []string // nil: the default tracecontext,baggage
		wantErr       string   // names the variable
	}{
		{name: "off by default", giveEnv: nil},
		{name: "off with only unrelated OTEL vars", giveEnv: map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}},
		{name: "endpoint turns otlp on", giveEnv: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "http/protobuf",
			wantEndpoint: "http://collector:4318/v1/traces", wantSampler: "parentbased_always_on"},
		{name: "per-signal endpoint used as is", giveEnv: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector/otlp/traces"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "http/protobuf",
			wantEndpoint: "https://collector/otlp/traces", wantSampler: "parentbased_always_on"},
		{name: "secrets in the endpoint are not shown", giveEnv: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:pa55@collector:4318/base?token=t0k"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "http/protobuf",
			wantEndpoint: "https://collector:4318/base/v1/traces", wantSampler: "parentbased_always_on"},
		{name: "otlp to the default endpoint", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "http/protobuf",
			wantEndpoint: "http://localhost:4318/v1/traces (default)", wantSampler: "parentbased_always_on"},
		{name: "grpc", giveEnv: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "grpc", wantEndpoint: "http://collector:4317", wantSampler: "parentbased_always_on"},
		{name: "grpc host:port", giveEnv: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "grpc", wantEndpoint: "collector:4317", wantSampler: "parentbased_always_on"},
		{name: "traces protocol wins", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			wantOn: true, wantExporters: []string{"otlp"}, wantProtocol: "http/json",
			wantEndpoint: "http://localhost:4318/v1/traces (default)", wantSampler: "parentbased_always_on"},
		{name: "console", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			wantOn: true, wantExporters: []string{"console"}, wantSampler: "traceidratio(0.25)"},
		{name: "otlp and console", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "otlp, Console"},
			wantOn: true, wantExporters: []string{"otlp", "console"}, wantProtocol: "http/protobuf",
			wantEndpoint: "http://localhost:4318/v1/traces (default)", wantSampler: "parentbased_always_on"},
		{name: "none wins over an endpoint", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}},
		{name: "sdk disabled", giveEnv: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "unknown exporter", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER: "zipkin" is not otlp, console or none`},
		{name: "none with others", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "none,otlp"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http"},
			wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL: "http" is not http/protobuf, http/json or grpc`},
		{name: "unknown traces protocol", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
			wantErr: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "bad endpoint", giveEnv: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector"}, wantErr: "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{name: "bad traces endpoint", giveEnv: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "://x"}, wantErr: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{name: "unknown sampler", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_ratio"}, wantErr: "OTEL_TRACES_SAMPLER"},
		{name: "bad sampler ratio", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			wantErr: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "propagators", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_PROPAGATORS": "Baggage, tracecontext,baggage"},
			wantOn: true, wantExporters: []string{"console"}, wantSampler: "parentbased_always_on", wantProps: []string{"baggage", "tracecontext"}},
		{name: "no propagation", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_PROPAGATORS": "none"},
			wantOn: true, wantExporters: []string{"console"}, wantSampler: "parentbased_always_on", wantProps: []string{"none"}},
		{name: "b3 is not in this build", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_PROPAGATORS": "tracecontext,b3"},
			wantErr: `OTEL_PROPAGATORS: "b3" is not supported by this build (tracecontext, baggage or none)`},
		{name: "unknown propagator", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_PROPAGATORS": "w3c"},
			wantErr: `OTEL_PROPAGATORS: "w3c" is not a propagator`},
		{name: "none with others", giveEnv: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_PROPAGATORS": "none,baggage"},
			wantErr: `OTEL_PROPAGATORS: "none,baggage": none cannot be combined`},
		// A platform may set B3 for every service: with tracing off the
		// worker propagates nothing of its own, so it need not refuse it.
		{name: "propagators unread while off", giveEnv: map[string]string{"OTEL_PROPAGATORS": "b3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOTelEnv(func(k string) (string, bool) { v, ok := tt.giveEnv[k]; return v, ok })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantOn, got.on())
			require.Equal(t, tt.wantExporters, got.exporters)
			require.Equal(t, tt.wantProtocol, got.protocol)
			require.Equal(t, tt.wantEndpoint, got.endpoint)
			if tt.wantOn {
				require.Equal(t, tt.wantSampler, got.sampler)
				want := tt.wantProps
				if want == nil {
					want = []string{"tracecontext", "baggage"}
				}
				require.Equal(t, want, got.propagators)
			}
		})
	}
}

// otlpSpan is a span as a collector received it.
type otlpSpan struct {
	name            string
	service         string
	traceID, spanID string
	parentSpanID    string
	attrs           map[string]string
}

// otlpSink is a minimal OTLP collector: it accepts OTLP/HTTP (protobuf and
// JSON) on /v1/traces and OTLP/gRPC, and keeps what it receives.
type otlpSink struct {
	coltracepb.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   []otlpSpan
	json    []string // bodies of OTLP/JSON requests
	headers []http.Header
}

func (s *otlpSink) add(req *coltracepb.ExportTraceServiceRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrValue(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.spans = append(s.spans, toSpan(service, sp))
			}
		}
	}
}

func toSpan(service string, sp *tracepb.Span) otlpSpan {
	o := otlpSpan{
		name: sp.GetName(), service: service, traceID: hex.EncodeToString(sp.GetTraceId()),
		spanID: hex.EncodeToString(sp.GetSpanId()), parentSpanID: hex.EncodeToString(sp.GetParentSpanId()),
		attrs: map[string]string{},
	}
	for _, kv := range sp.GetAttributes() {
		o.attrs[kv.GetKey()] = anyString(kv.GetValue())
	}
	return o
}

func attrValue(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return ""
}

// Export is the OTLP/gRPC method.
func (s *otlpSink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP.
func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	if r.Header.Get("Content-Type") == "application/json" {
		s.mu.Lock()
		s.json = append(s.json, string(body))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.add(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) named(name string) []otlpSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []otlpSpan
	for _, sp := range s.spans {
		if sp.name == name {
			out = append(out, sp)
		}
	}
	return out
}

func (s *otlpSink) received() (spans int, json []string, headers []http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spans), append([]string(nil), s.json...), append([]http.Header(nil), s.headers...)
}

// startHTTPSink serves an otlpSink over HTTP on loopback.
func startHTTPSink(t *testing.T) (*otlpSink, string) {
	t.Helper()
	sink := &otlpSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	return sink, srv.URL
}

// unsetOTel clears the OTEL_* variables the tests set, whatever the
// environment running them has.
func unsetOTel(t testing.TB) {
	t.Helper()
	for _, k := range []string{envSDKDisabled, envExporter, envProtocol, envTracesProtocol, envEndpoint, envTracesEndpoint,
		envSampler, envSamplerArg, envServiceName, envPropagators, "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		t.Setenv(k, "")
	}
}

// The exporter the environment asks for delivers spans there, with the
// resource and the headers it asks for, whatever the protocol.
func TestTracingDelivers(t *testing.T) {
	tests := []struct {
		name     string
		protocol string
	}{
		{name: "otlp http/protobuf", protocol: "http/protobuf"},
		{name: "otlp http/json", protocol: "http/json"},
		{name: "otlp grpc", protocol: "grpc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifyNoLeaks(t)
			unsetOTel(t)
			sink, endpoint := startHTTPSink(t)
			if tt.protocol == "grpc" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				srv := grpc.NewServer()
				coltracepb.RegisterTraceServiceServer(srv, sink)
				go func() { _ = srv.Serve(ln) }()
				t.Cleanup(srv.Stop)
				endpoint = "http://" + ln.Addr().String()
			}
			t.Setenv(envEndpoint, endpoint)
			t.Setenv(envProtocol, tt.protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20sink-token")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")

			var (
				mu   sync.Mutex // the SDK reports errors from its own goroutines
				errs []error
			)
			tr, err := startTracing(context.Background(), io.Discard, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
			require.NoError(t, err)
			require.NotNil(t, tr)
			_, span := tr.tracer("test").Start(context.Background(), "one span")
			span.End()
			require.NoError(t, tr.shutdown(), "shutdown flushes the span")
			mu.Lock()
			require.Empty(t, errs)
			mu.Unlock()

			n, jsonBodies, headers := sink.received()
			if tt.protocol == "http/json" {
				require.Len(t, jsonBodies, 1)
				require.Contains(t, jsonBodies[0], `"one span"`)
				require.Contains(t, jsonBodies[0], defaultServiceName)
				require.Equal(t, "Bearer sink-token", headers[0].Get("Authorization"))
				return
			}
			require.Equal(t, 1, n)
			got := sink.named("one span")
			require.Len(t, got, 1)
			require.Equal(t, defaultServiceName, got[0].service)
			if tt.protocol == "http/protobuf" {
				require.Equal(t, "Bearer sink-token", headers[0].Get("Authorization"))
			}
		})
	}
}

// A bad OTEL_* value stops run and enqueue at start, naming the variable.
func TestBadOTelEnvStopsStart(t *testing.T) {
	tests := []struct {
		name    string
		giveKey string
		giveVal string
		args    []string
	}{
		{name: "run, exporter", giveKey: envExporter, giveVal: "jaeger", args: []string{"run", "--nats-url", "nats://127.0.0.1:1", "--http-addr", ""}},
		{name: "run, protocol", giveKey: envProtocol, giveVal: "udp", args: []string{"run", "--nats-url", "nats://127.0.0.1:1", "--http-addr", ""}},
		{name: "enqueue, exporter", giveKey: envExporter, giveVal: "jaeger", args: []string{"enqueue", "--nats-url", "nats://127.0.0.1:1", "cb5fa20de5fd4cf8be681d4bd6fdd2f6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unsetOTel(t)
			t.Setenv(envExporter, "otlp")
			t.Setenv(tt.giveKey, tt.giveVal)
			r := cli(t, "", tt.args...)
			require.Equal(t, 1, r.code, r.err)
			require.Contains(t, r.err, tt.giveKey+": \""+tt.giveVal+"\"")
		})
	}
}

// End to end: enqueue makes a producer span per request and sends its
// traceparent; worker run continues the trace (a delivery span, an API
// call span under it); the dead letter names the trace and dlq show shows
// it; the OTLP headers reach the collector and never the logs.
func TestRunAndEnqueueTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS, the simulator and the whole service")
	}
	unsetOTel(t)
	env, natsFlags := toolEnv(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
	sink, endpoint := startHTTPSink(t)
	const token = "otlp-token-never-logged-71c2"
	t.Setenv(envEndpoint, endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer "+token)
	t.Setenv("HUAWEICLOUD_SDK_AK", testenv.AK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testenv.SK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testenv.ProjectID)

	good, missing := seqJobID("a", 1), seqJobID("404", 2)
	r := cli(t, "", append([]string{"enqueue", good, missing}, natsFlags...)...)
	require.Equal(t, 0, r.code, r.err)
	require.Contains(t, r.err, "enqueue: tracing: otlp (http/protobuf to "+endpoint+"/v1/traces)")
	sends := map[string]otlpSpan{}
	for _, s := range sink.named("send " + env.Conn.Config().Subject) {
		sends[s.attrs["codearts_recover.job_id"]] = s
	}
	require.Len(t, sends, 2, "a producer span per request, flushed when enqueue exits")
	require.NotEqual(t, sends[good].traceID, sends[missing].traceID, "each request its own trace")
	require.Empty(t, sends[good].parentSpanID, "the root of its trace")

	o := parseRun(t, append(natsFlags, "--endpoint", env.Sim.URL(), "--http-addr", "", "--ack-wait", "5s", "--drain-timeout", "5s")...)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := o.open(ctx, &logs)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool { return env.Pending() == 0 && env.DLQCount() == 1 }, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	s.Close() // flushes the spans

	process := map[string]otlpSpan{}
	for _, sp := range sink.named("process " + env.Conn.Config().Subject) {
		process[sp.attrs["codearts_recover.job_id"]] = sp
	}
	require.Len(t, process, 2)
	calls := map[string]otlpSpan{} // by parent
	for _, sp := range sink.named(worker.CallSpanName) {
		calls[sp.parentSpanID] = sp
	}
	for job, want := range map[string]string{good: "200", missing: "404"} {
		p := process[job]
		require.Equal(t, sends[job].traceID, p.traceID, "%s: the worker continues enqueue's trace", job)
		require.Equal(t, sends[job].spanID, p.parentSpanID, "%s: a child of the producer span", job)
		require.Equal(t, defaultServiceName, p.service)
		require.Equal(t, "false", p.attrs["codearts_recover.trace_derived"])
		c, ok := calls[p.spanID]
		require.True(t, ok, "%s: an API call span under the delivery", job)
		require.Equal(t, p.traceID, c.traceID)
		require.Equal(t, want, c.attrs["http.response.status_code"])
		// The OpenTelemetry conventions: messaging on the delivery, HTTP
		// client on the call.
		require.Equal(t, "nats", p.attrs["messaging.system"])
		require.Equal(t, "process", p.attrs["messaging.operation.type"])
		require.Equal(t, "process", p.attrs["messaging.operation.name"])
		require.Equal(t, env.Conn.Config().Subject, p.attrs["messaging.destination.name"])
		require.Equal(t, env.Conn.Config().Consumer, p.attrs["messaging.consumer.group.name"])
		require.Equal(t, job, p.attrs["messaging.message.id"], "enqueue's Nats-Msg-Id")
		require.Equal(t, sends[job].attrs["messaging.message.id"], p.attrs["messaging.message.id"], "the same id on both sides")
		require.Equal(t, "POST", c.attrs["http.request.method"])
		require.Equal(t, worker.CallURLTemplate, c.attrs["url.template"])
		simURL, err := url.Parse(env.Sim.URL())
		require.NoError(t, err)
		require.Equal(t, simURL.Hostname(), c.attrs["server.address"])
		require.Equal(t, simURL.Port(), c.attrs["server.port"])
		require.NotContains(t, c.attrs, "http.request.resend_count", "a first try is no resend")
		require.Equal(t, "1", c.attrs["codearts_recover.attempt"])
		require.NotEmpty(t, c.attrs["codearts_recover.request_id"])
	}
	require.Equal(t, "404", calls[process[missing].spanID].attrs["error.type"], "error.type is the status code")
	require.NotContains(t, calls[process[good].spanID].attrs, "error.type")
	require.Equal(t, "recovered", process[good].attrs["codearts_recover.outcome"])
	require.Equal(t, "dead_lettered", process[missing].attrs["codearts_recover.outcome"])

	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, process[missing].traceID, dls[0].TraceID)
	require.Equal(t, process[missing].spanID, dls[0].SpanID)
	show := cli(t, "", append([]string{"dlq", "show", "1"}, natsFlags...)...)
	require.Equal(t, 0, show.code, show.err)
	require.Contains(t, show.out, `"trace_id": "`+dls[0].TraceID+`"`)

	out := logs.String()
	require.Contains(t, out, `"msg":"tracing","tracing":true,"exporters":["otlp"]`)
	require.Contains(t, out, `"endpoint":"`+endpoint+`/v1/traces"`)
	require.Contains(t, out, `"trace_id":"`+dls[0].TraceID+`"`, "the dead-lettered log line names the trace")
	require.NotContains(t, out, token)
	require.NotContains(t, r.err, token)
	_, _, headers := sink.received()
	for _, h := range headers {
		require.Equal(t, "Bearer "+token, h.Get("Authorization"))
	}
}

// Tracing is off unless asked for: run says so and makes no span; records
// carry no trace id.
func TestTracingOffByDefault(t *testing.T) {
	unsetOTel(t)
	tr, err := startTracing(context.Background(), io.Discard, func(error) {})
	require.NoError(t, err)
	require.Nil(t, tr)
	require.Nil(t, tr.provider(), "an untyped nil: the pool makes no span")
	require.Nil(t, tr.tracer("x"))
	require.NoError(t, tr.shutdown())
	require.Equal(t, "off", tr.String())
}

// dlq replay keeps a request's traceparent, whatever its case, so the
// replayed request stays in its producer's trace.
func TestReplayKeepsTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, name := range []string{"traceparent", "Traceparent"} {
		h := admin.ReplayHeader(map[string][]string{name: {tp}, "Nats-Msg-Id": {"x"}, "tracestate": {"k=v"}}, 7)
		require.Equal(t, []string{tp}, h[name])
		require.Equal(t, []string{"k=v"}, h["tracestate"])
		require.NotContains(t, h, "Nats-Msg-Id")
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", worker.ProducerTrace(h).TraceID().String())
	}
}

// `worker demo` honours OTEL_* as `run` does: every request's deliveries
// land in one trace, each with its API calls as children.
func TestDemoTraced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	unsetOTel(t)
	sink, endpoint := startHTTPSink(t)
	t.Setenv(envEndpoint, endpoint)
	const n = 60
	var stdout, stderr bytes.Buffer
	// No campaign: its discovery reads are API calls without a request.
	code := Main([]string{"demo", "--requests", strconv.Itoa(n), "--json", "--latency", "2ms", "--seed", "5", "--http-addr", "127.0.0.1:0", "--campaign-jobs", "0"},
		strings.NewReader(""), &stdout, &stderr)
	require.Zero(t, code, stderr.String())
	var sum demoSummary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum))
	require.Zero(t, sum.Lost)

	processes := sink.named("process " + queue.DefaultSubject)
	traces := map[string]bool{}
	spans := map[string]otlpSpan{}
	for _, p := range processes {
		traces[p.traceID] = true
		spans[p.spanID] = p
	}
	require.Len(t, traces, n, "one trace per request, whatever its deliveries")
	calls := sink.named("POST /v3/jobs/{job_id}/recover")
	var apiCalls int64
	for _, c := range sum.APICalls {
		apiCalls += c
	}
	require.Len(t, calls, int(apiCalls), "a span per API call")
	for _, c := range calls {
		parent, ok := spans[c.parentSpanID]
		require.True(t, ok, "call span %s has its delivery as parent", c.spanID)
		require.Equal(t, parent.traceID, c.traceID)
	}
}
