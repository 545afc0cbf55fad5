package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkEnqueueTraced is BenchmarkEnqueue with tracing on: a producer
// span per request, exported over OTLP/HTTP to a local collector that
// discards them (it shares the CPU, as a sidecar collector would).
func BenchmarkEnqueueTraced(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	unsetOTel(b)
	b.Setenv(envEndpoint, srv.URL)
	BenchmarkEnqueue(b)
}
