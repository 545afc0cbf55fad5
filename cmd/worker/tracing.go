package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
)

// Tracing is configured by OpenTelemetry's standard environment variables
// only (no flags): the SDK and the OTLP exporters read the same ones
// (endpoint, headers, TLS, timeout, compression, sampler, batch and span
// limits), so what a platform already sets for every service works here.
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envExporter       = "OTEL_TRACES_EXPORTER"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
	envServiceName    = "OTEL_SERVICE_NAME"
	envPropagators    = "OTEL_PROPAGATORS"

	defaultServiceName = "codearts-recover-worker"
	// tracingShutdownTimeout bounds the flush of buffered spans on exit.
	tracingShutdownTimeout = 5 * time.Second
)

// otelConfig is what the OTEL_* environment asks of tracing.
type otelConfig struct {
	// exporters are "otlp" and/or "console"; none means tracing is off.
	exporters []string
	// protocol of the otlp exporter: http/protobuf, http/json or grpc.
	protocol string
	// endpoint is where otlp spans go, for the startup log: without
	// credentials, query or fragment.
	endpoint string
	sampler  string
	// propagators are the OTEL_PROPAGATORS names in effect: tracecontext
	// and/or baggage, or none.
	propagators []string
}

func (c otelConfig) on() bool { return len(c.exporters) > 0 }

// parseOTelEnv reads the OTEL_* variables that decide whether tracing is on
// and how spans leave the process, and checks the ones the SDK would
// otherwise ignore with a warning (a typo must not silently turn tracing
// off or change sampling). Tracing is on when OTEL_TRACES_EXPORTER names
// otlp or console, or when an OTLP endpoint is set and OTEL_TRACES_EXPORTER
// is not "none"; OTEL_SDK_DISABLED=true turns it off.
func parseOTelEnv(lookup func(string) (string, bool)) (otelConfig, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	var c otelConfig
	if v := get(envSDKDisabled); strings.EqualFold(v, "true") {
		return c, nil
	}
	endpointVar, endpoint := envTracesEndpoint, get(envTracesEndpoint)
	if endpoint == "" {
		endpointVar, endpoint = envEndpoint, get(envEndpoint)
	}
	exporters := get(envExporter)
	switch {
	case exporters == "" && endpoint == "":
		return c, nil // off by default
	case exporters == "":
		exporters = "otlp"
	}
	for e := range strings.SplitSeq(strings.ToLower(exporters), ",") {
		switch e = strings.TrimSpace(e); e {
		case "otlp", "console":
			if !slices.Contains(c.exporters, e) {
				c.exporters = append(c.exporters, e)
			}
		case "none":
			if strings.Contains(exporters, ",") {
				return otelConfig{}, fmt.Errorf("%s: %q: none cannot be combined with other exporters", envExporter, exporters)
			}
			return otelConfig{}, nil
		default:
			return otelConfig{}, fmt.Errorf("%s: %q is not otlp, console or none", envExporter, e)
		}
	}

	protoVar, proto := envTracesProtocol, get(envTracesProtocol)
	if proto == "" {
		protoVar, proto = envProtocol, get(envProtocol)
	}
	switch proto {
	case "":
		proto = "http/protobuf" // the OpenTelemetry specification's default
	case "http/protobuf", "http/json", "grpc":
	default:
		return otelConfig{}, fmt.Errorf("%s: %q is not http/protobuf, http/json or grpc", protoVar, proto)
	}
	if slices.Contains(c.exporters, "otlp") {
		c.protocol = proto
		shown, err := showEndpoint(endpoint, proto, endpointVar == envTracesEndpoint)
		if err != nil {
			return otelConfig{}, fmt.Errorf("%s: %w", endpointVar, err)
		}
		c.endpoint = shown
	}
	var err error

	if c.propagators, err = parsePropagators(get(envPropagators)); err != nil {
		return otelConfig{}, err
	}

	c.sampler = strings.ToLower(get(envSampler))
	switch c.sampler {
	case "":
		c.sampler = "parentbased_always_on" // the SDK's default
	case "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
	case "traceidratio", "parentbased_traceidratio":
		if arg := get(envSamplerArg); arg != "" {
			r, err := strconv.ParseFloat(arg, 64)
			if err != nil || r < 0 || r > 1 {
				return otelConfig{}, fmt.Errorf("%s: %q is not a ratio in [0, 1]", envSamplerArg, arg)
			}
			c.sampler += "(" + arg + ")"
		}
	default:
		return otelConfig{}, fmt.Errorf("%s: %q is not always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
			envSampler, c.sampler)
	}
	return c, nil
}

// parsePropagators reads OTEL_PROPAGATORS: a comma-separated list, the
// specification's default tracecontext,baggage when empty. This build has
// the W3C propagators of the otel module only; a propagator it lacks (b3,
// jaeger, xray, ottrace, …) is refused by name rather than dropped, since a
// platform that propagates B3 would see every trace silently broken here.
func parsePropagators(v string) ([]string, error) {
	if v == "" {
		return []string{"tracecontext", "baggage"}, nil
	}
	var names []string
	for name := range strings.SplitSeq(strings.ToLower(v), ",") {
		switch name = strings.TrimSpace(name); name {
		case "tracecontext", "baggage":
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		case "none":
			if strings.Contains(v, ",") {
				return nil, fmt.Errorf("%s: %q: none cannot be combined with other propagators", envPropagators, v)
			}
			return []string{"none"}, nil
		case "b3", "b3multi", "jaeger", "xray", "ottrace":
			return nil, fmt.Errorf("%s: %q is not supported by this build (tracecontext, baggage or none)", envPropagators, name)
		default:
			return nil, fmt.Errorf("%s: %q is not a propagator (tracecontext, baggage or none)", envPropagators, name)
		}
	}
	return names, nil
}

// propagatorOf builds the propagator that names (from parsePropagators)
// ask for; none is an empty composite that reads and writes nothing.
func propagatorOf(names []string) propagation.TextMapPropagator {
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch n {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...)
}

// showEndpoint checks an OTLP endpoint and returns it for the log without
// what may be secret (user info, query). "" means the exporter's default.
func showEndpoint(endpoint, proto string, perSignal bool) (string, error) {
	if endpoint == "" {
		if proto == "grpc" {
			return "localhost:4317 (default)", nil
		}
		return "http://localhost:4318/v1/traces (default)", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("not a URL: %w", errors.Unwrap(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if proto == "grpc" && !strings.ContainsAny(endpoint, "@?#") {
			// The gRPC exporter also takes a bare host:port target.
			return endpoint, nil
		}
		return "", fmt.Errorf("%q is not an http:// or https:// URL", u.Redacted())
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if proto != "grpc" && !perSignal {
		// The exporter appends the signal's path to a base endpoint.
		shown.Path = strings.TrimSuffix(shown.Path, "/") + "/v1/traces"
	}
	return shown.String(), nil
}

// tracing is the process's tracer provider; a nil *tracing is tracing off.
type tracing struct {
	tp  *sdktrace.TracerProvider
	cfg otelConfig
	// base is the command's context without its cancellation: the final
	// flush runs after a signal ended the command, within its own timeout.
	base context.Context
}

// startTracing sets up tracing as the OTEL_* environment asks: nil (off)
// when it asks for none. console receives the console exporter's spans;
// onError receives the SDK's own errors (an unreachable collector), which
// never stop the process.
func startTracing(ctx context.Context, console io.Writer, onError func(error)) (*tracing, error) {
	cfg, err := parseOTelEnv(os.LookupEnv)
	if err != nil || !cfg.on() {
		return nil, err
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(onError))
	// The service's defaults first: OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override them.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", defaultServiceName),
			attribute.String("service.version", buildinfo.Get(buildVersion()).Version),
		),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing resource (%s, OTEL_RESOURCE_ATTRIBUTES): %w", envServiceName, err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, name := range cfg.exporters {
		var exp sdktrace.SpanExporter
		switch name {
		case "console":
			exp, err = stdouttrace.New(stdouttrace.WithWriter(console))
		case "otlp":
			// Both read the endpoint, headers, TLS, timeout and compression
			// from OTEL_EXPORTER_OTLP_* themselves.
			if cfg.protocol == "grpc" {
				exp, err = otlptracegrpc.New(ctx)
			} else {
				exp, err = otlptracehttp.New(ctx)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("tracing exporter %s: %w", name, err)
		}
		// The sampler, batch sizes and span limits come from
		// OTEL_TRACES_SAMPLER, OTEL_BSP_* and OTEL_SPAN_*.
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return &tracing{tp: sdktrace.NewTracerProvider(opts...), cfg: cfg, base: context.WithoutCancel(ctx)}, nil
}

// provider is the tracer provider to hand to the pool or a publisher: an
// untyped nil when tracing is off.
func (t *tracing) provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.tp
}

// propagator carries trace context through NATS headers as
// OTEL_PROPAGATORS asks; nil when tracing is off (the pool and the producer
// then read and write W3C trace context only, for the ids in logs and dead
// letters).
func (t *tracing) propagator() propagation.TextMapPropagator {
	if t == nil {
		return nil
	}
	return propagatorOf(t.cfg.propagators)
}

// tracer is a tracer of the command's own spans, nil when off.
func (t *tracing) tracer(name string) trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tp.Tracer(name)
}

// shutdown exports the spans still buffered, within tracingShutdownTimeout.
// It runs when the command is over, its context perhaps cancelled, so it
// takes none of the caller's. (contextcheck reads the directive below from
// the doc comment to skip the function; nolintlint sees no issue here.)
//
//nolint:contextcheck,nolintlint // the final flush outlives the command's context, bounded by its own timeout
func (t *tracing) shutdown() error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.base, tracingShutdownTimeout)
	defer cancel()
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("flushing spans: %w", err)
	}
	return nil
}

// logFields describe the tracing setup for the startup log: never the
// OTLP headers (they carry tokens).
func (t *tracing) logFields() []zap.Field {
	if t == nil {
		return []zap.Field{zap.Bool("tracing", false)}
	}
	f := []zap.Field{zap.Bool("tracing", true), zap.Strings("exporters", t.cfg.exporters), zap.String("sampler", t.cfg.sampler),
		zap.Strings("propagators", t.cfg.propagators)}
	if t.cfg.protocol != "" {
		f = append(f, zap.String("protocol", t.cfg.protocol), zap.String("endpoint", t.cfg.endpoint))
	}
	return f
}

// String describes the tracing setup in one line, for commands without a
// logger (enqueue).
func (t *tracing) String() string {
	if t == nil {
		return "off"
	}
	s := strings.Join(t.cfg.exporters, "+")
	if t.cfg.protocol != "" {
		s += fmt.Sprintf(" (%s to %s)", t.cfg.protocol, t.cfg.endpoint)
	}
	return s + ", sampler " + t.cfg.sampler + ", propagators " + strings.Join(t.cfg.propagators, ",")
}
