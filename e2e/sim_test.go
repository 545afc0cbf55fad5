//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// simAPI is the simulated CodeArts API served in the test process (so the
// test can switch an outage on and off and read per-job records), behind a
// handler that checks every request that reaches it for secrets: the SK
// and the NATS password must never be on the wire; the AK only inside
// Authorization.
type simAPI struct {
	*codeartssim.Server
	url string
	srv *http.Server

	forbidden []string // must appear nowhere in a request
	ak        string   // may appear in Authorization only

	mu    sync.Mutex
	leaks []string
}

func startSim(t testing.TB, c canaries, opts ...codeartssim.Option) *simAPI {
	t.Helper()
	sim := codeartssim.New(append([]codeartssim.Option{codeartssim.WithCredentials(c.ak, c.sk)}, opts...)...)
	a := &simAPI{Server: sim, forbidden: []string{c.sk, c.natsPassword}, ak: c.ak}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.url = "http://" + ln.Addr().String()
	a.srv = &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = sim.Close() // ends latency and hangs first
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(ctx)
	})
	return a
}

func (a *simAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	a.inspect(r, body)
	a.Server.ServeHTTP(w, r)
}

func (a *simAPI) inspect(r *http.Request, body []byte) {
	var found []string
	wire := r.Method + " " + r.URL.String() + "\n" + string(body)
	for k, vs := range r.Header {
		for _, v := range vs {
			if k == "Authorization" {
				wire += "\n" + k + ": " + strings.ReplaceAll(v, a.ak, "<ak>")
				continue
			}
			wire += "\n" + k + ": " + v
		}
	}
	for _, s := range append(a.forbidden, a.ak) {
		if strings.Contains(wire, s) {
			found = append(found, "secret on the wire in "+r.Method+" "+r.URL.Path)
		}
	}
	if len(found) > 0 {
		a.mu.Lock()
		a.leaks = append(a.leaks, found...)
		a.mu.Unlock()
	}
}

// wireLeaks returns what inspect found.
func (a *simAPI) wireLeaks() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.leaks...)
}
