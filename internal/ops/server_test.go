package ops_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// get calls path on h and returns the status and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestReadyz(t *testing.T) {
	errDown := errors.New("disconnected from NATS")
	tests := []struct {
		name         string
		giveChecks   map[string]error // in order of checkOrder
		wantStatus   int
		wantContains []string
		wantAbsent   []string
	}{
		{name: "no checks", wantStatus: 200, wantContains: []string{"ok"}},
		{
			name:       "all pass",
			giveChecks: map[string]error{"nats": nil, "consumer": nil, "draining": nil},
			wantStatus: 200, wantContains: []string{"ok"},
		},
		{
			name:       "one fails",
			giveChecks: map[string]error{"nats": errDown, "consumer": nil, "draining": nil},
			wantStatus: 503, wantContains: []string{"not ready", "nats: disconnected from NATS"},
			wantAbsent: []string{"consumer", "draining"},
		},
		{
			name:       "two fail",
			giveChecks: map[string]error{"nats": errDown, "consumer": nil, "draining": errors.New("shutting down")},
			wantStatus: 503, wantContains: []string{"nats: disconnected from NATS", "draining: shutting down"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ops.New(ops.Config{})
			for _, name := range []string{"nats", "consumer", "draining"} {
				if err, ok := tt.giveChecks[name]; ok {
					s.AddCheck(name, func() error { return err })
				}
			}
			code, body := get(t, s.Handler(), "/readyz")
			require.Equal(t, tt.wantStatus, code)
			for _, w := range tt.wantContains {
				require.Contains(t, body, w)
			}
			for _, w := range tt.wantAbsent {
				require.NotContains(t, body, w)
			}
			// Liveness never follows readiness.
			code, body = get(t, s.Handler(), "/healthz")
			require.Equal(t, 200, code)
			require.Equal(t, "ok\n", body)
		})
	}
}

func TestReadyzLogsChangesOnly(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s := ops.New(ops.Config{Logger: zap.New(core)})
	failing := errors.New("paused: credentials rejected")
	s.AddCheck("paused", func() error { return failing })

	for range 3 {
		code, _ := get(t, s.Handler(), "/readyz")
		require.Equal(t, 503, code)
	}
	failing = nil
	for range 3 {
		code, _ := get(t, s.Handler(), "/readyz")
		require.Equal(t, 200, code)
	}
	require.Equal(t, 1, logs.FilterMessage("not ready").Len())
	require.Equal(t, "paused: paused: credentials rejected", logs.FilterMessage("not ready").All()[0].ContextMap()["reason"])
	require.Equal(t, 1, logs.FilterMessage("ready").Len())
}

func TestMethodNotAllowed(t *testing.T) {
	s := ops.New(ops.Config{})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

// TestNATSDown runs the real pieces: a NATS server that goes away must make
// the worker not ready with the reason, and must not make it not alive.
func TestNATSDown(t *testing.T) {
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.Config{URL: ns.URL()})
	require.NoError(t, err)
	// Close while reconnecting reports that it could not drain; the
	// connection is closed all the same.
	defer func() { _ = conn.Close(time.Second) }()

	s := ops.New(ops.Config{Addr: "127.0.0.1:0"})
	s.AddCheck("nats", func() error {
		if !conn.Connected() {
			return errors.New("not connected")
		}
		return nil
	})
	require.NoError(t, s.Start(t.Context()))
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	defer func() { require.NoError(t, s.Close()) }() // after Shutdown: a no-op
	base := "http://" + s.Addr()

	require.Equal(t, 200, httpGet(t, base+"/readyz").code)

	ns.Shutdown()
	require.Eventually(t, func() bool { return !conn.Connected() }, 10*time.Second, 10*time.Millisecond)

	r := httpGet(t, base+"/readyz")
	require.Equal(t, 503, r.code)
	require.Contains(t, r.body, "nats: not connected")
	r = httpGet(t, base+"/healthz")
	require.Equal(t, 200, r.code)
}

type response struct {
	code int
	body string
}

func httpGet(t *testing.T, url string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	// A fresh transport per call: no keep-alive goroutine outlives the test.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, body: string(b)}
}

func TestStartErrors(t *testing.T) {
	require.Error(t, ops.New(ops.Config{}).Start(t.Context()), "no address")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	err = ops.New(ops.Config{Addr: ln.Addr().String()}).Start(t.Context())
	require.ErrorContains(t, err, "http-addr")

	// Shutdown and Close without Start are no-ops.
	require.NoError(t, ops.New(ops.Config{}).Shutdown(context.Background()))
	require.NoError(t, ops.New(ops.Config{}).Close())
}
