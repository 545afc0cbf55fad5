package ops

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHostsAllowed(t *testing.T) {
	h, err := NewHosts([]string{"recover-worker.ops.svc", "*.example.com", "Worker.Local."})
	require.NoError(t, err)
	tests := []struct {
		giveHost string
		want     bool
	}{
		{"127.0.0.1:8081", true},
		{"10.1.2.3", true},
		{"[::1]:8080", true},
		{"[fe80::1%25eth0]:8080", true},
		{"localhost:8081", true},
		{"LOCALHOST.", true},
		{"recover-worker.ops.svc:8080", true},
		{"a.example.com", true},
		{"worker.local", true},
		{"example.com", false},
		{"evil.example", false},
		{"localhost.evil.example", false},
		{"127.0.0.1.nip.io", false},
		{"", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, h.Allowed(tt.giveHost), tt.giveHost)
	}
	for _, bad := range []string{"", "host:8080", "http://host", "*", "a b"} {
		_, err := NewHosts([]string{bad})
		require.ErrorContains(t, err, "allowed-hosts", bad)
	}
}

// A request naming another host gets 421 on the ops listener, whatever
// the path; the probes' and Prometheus' (an IP) pass.
func TestOpsListenerRefusesOtherHosts(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })
	for _, path := range []string{"/healthz", "/metrics", "/readyz", "/"} {
		code, _ := hostGet(t, "http://"+s.Addr()+path, "evil.example")
		require.Equal(t, http.StatusMisdirectedRequest, code, path)
	}
	code, body := hostGet(t, "http://"+s.Addr()+"/healthz", "")
	require.Equal(t, http.StatusOK, code, body)
	code, _ = hostGet(t, "http://"+s.Addr()+"/", "")
	require.Equal(t, http.StatusNotFound, code, "the ops listener serves no page")
}

// hostGet GETs url with the Host header set to host ("" = the URL's).
func hostGet(t *testing.T, url, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
