//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Scenario 10: workers start while JetStream cannot answer: a 3-node
// cluster of which one node is up has no quorum and no meta leader, as in a
// cold start of the whole cluster or a rolling upgrade gone slow. A worker
// must wait: alive, not ready with the reason, a warn line per failed try;
// one stopped with SIGTERM while it waits exits 0 at once. When the other
// nodes come up the waiting worker creates the R3 streams and becomes
// ready. A second worker started without --replicas 3 keeps the streams
// R3 and says so, `worker status` shows the difference, and together they
// drain a mixed run with nothing lost.
func TestStartupWaitsForJetStream(t *testing.T) {
	r := newRand(t)
	const n = 1000
	s := newSystem(t, "10_startup_waits_for_jetstream", sysOptions{nodes: 3, startNodes: 1, sim: mixedSim(10 * time.Millisecond)})

	w1 := s.spawnWorker("w1", urls(s.nodes), "--concurrency", "16", "--replicas", "3")
	s.workers = append(s.workers, w1)
	waiting := func(w *workerProc, tries int) bool {
		return strings.Count(readFile(w.log), `"msg":"JetStream not ready; trying again"`) >= tries
	}
	if !waitFor(60*time.Second, func() bool { return w1.p.exited() || waiting(w1, 2) }) {
		t.Fatalf("worker w1 logged no failed try within 60s; log:\n%s", logTail(w1.log, 20))
	}
	s.checkAlive()
	code, body := probe(w1.httpAddr, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for JetStream") {
		t.Errorf("while JetStream cannot answer, /readyz says %d %q; want 503 saying it waits for JetStream", code, body)
	}
	if code, _ := probe(w1.httpAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("while waiting, /healthz says %d; want 200 (alive: no restart would help)", code)
	}
	t.Logf("w1 waits: /readyz %d %s", code, strings.TrimSpace(body))

	// SIGTERM during the wait: a clean exit, at once.
	w0 := s.spawnWorker("w0", urls(s.nodes), "--replicas", "3")
	if !waitFor(60*time.Second, func() bool { return w0.p.exited() || waiting(w0, 1) }) {
		t.Fatalf("worker w0 logged no failed try within 60s; log:\n%s", logTail(w0.log, 20))
	}
	start := time.Now()
	if err := w0.p.stop(5 * time.Second); err != nil {
		t.Errorf("worker w0, stopped while waiting for JetStream: %v (want exit 0 within 5s); log:\n%s", err, logTail(w0.log, 10))
	} else {
		t.Logf("w0 exited 0 %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	}

	for _, node := range s.nodes[1:] {
		node.start()
	}
	for _, node := range s.nodes {
		node.waitHealthy(60 * time.Second)
	}
	if !waitFor(90*time.Second, func() bool { return w1.p.exited() || w1.ready() }) {
		t.Fatalf("worker w1 not ready within 90s of the cluster's quorum; log:\n%s", logTail(w1.log, 20))
	}
	s.checkAlive()

	// A worker without --replicas 3 does not scale the streams down.
	w2 := s.spawnWorker("w2", urls(s.nodes), "--concurrency", "16")
	s.workers = append(s.workers, w2)
	if !waitFor(60*time.Second, func() bool { return w2.p.exited() || w2.ready() }) {
		t.Fatalf("worker w2 not ready within 60s; log:\n%s", logTail(w2.log, 20))
	}
	s.checkAlive()
	for _, name := range []string{requestStream, dlqStream, resultStream} {
		if got := s.replicas(name); got != 3 {
			t.Errorf("stream %s has %d replicas after w2 started; want the 3 it was created with", name, got)
		}
	}
	want := "stream CODEARTS_RECOVER keeps replicas 3; the worker would create 1; pass --update-streams to change it"
	if !strings.Contains(readFile(w2.log), want) {
		t.Errorf("worker w2 does not say %q; log:\n%s", want, logTail(w2.log, 20))
	}
	out := s.status()
	for _, name := range []string{requestStream, dlqStream, resultStream} {
		if !strings.Contains(out, name) || !strings.Contains(out, "replicas") {
			t.Errorf("worker status does not show %s's replicas differing from the worker's:\n%s", name, out)
		}
	}

	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))
	s.finish(finishOptions{drainTimeout: 2 * time.Minute})
}

// replicas is a stream's replica count, or -1 if it cannot be read.
func (s *system) replicas(stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		s.t.Logf("stream %s: %v", stream, err)
		return -1
	}
	return st.CachedInfo().Config.Replicas
}

// status runs `worker status` against the system with the environment of
// its workers and returns what it printed.
func (s *system) status() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, workerBin(), "status", "--nats-url", urls(s.nodes))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "RECOVER_NATS_USER=" + natsUser, "RECOVER_NATS_PASSWORD=" + s.secrets.natsPassword}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("worker status: %v\n%s", err, out)
	}
	s.t.Logf("worker status:\n%s", out)
	return string(out)
}
