//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// The worker's defaults, which the tests rely on and do not override.
const (
	requestStream = "CODEARTS_RECOVER"
	dlqStream     = "CODEARTS_RECOVER_DLQ"
	resultStream  = "CODEARTS_RECOVER_RESULTS"
	requestSubj   = "codearts.build.recover"
	consumerName  = "recover-worker"
)

// ackWait is the consumer AckWait every test runs with: short, so a
// crashed worker's requests come back quickly.
const ackWait = 3 * time.Second

// canaries are unique credentials for one test: if any of them shows up in
// the worker's output, a dead letter, a result event, /metrics or (SK and
// NATS password) on the wire to the API, a secret leaked.
type canaries struct {
	ak, sk, natsPassword, projectID string
}

func newCanaries() canaries {
	r := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	return canaries{
		ak:           "E2EAKCANARY" + strings.ToUpper(r(10)),
		sk:           "e2e-sk-canary-" + r(16),
		natsPassword: "e2e-nats-canary-" + r(16),
		projectID:    r(16),
	}
}

// secrets are the strings that must never appear in output, by name.
func (c canaries) secrets() map[string]string {
	return map[string]string{"AK": c.ak, "SK": c.sk, "NATS password": c.natsPassword}
}

// system is one test's world: nats-server process(es), the simulated API,
// worker processes, and the test's own NATS client that enqueues requests
// and reads the outcome streams.
type system struct {
	t       *testing.T
	name    string
	dir     string
	secrets canaries
	procs   *procSet
	nodes   []*natsNode
	sim     *simAPI
	nc      *nats.Conn
	js      jetstream.JetStream
	workers []*workerProc

	items map[uint64]*item // by stream sequence
	start time.Time        // first publish

	// results and deadLetters are the records settle read.
	results, deadLetters [][]byte
}

type sysOptions struct {
	nodes int // nats-server processes: 1 (default) or 3 (a cluster)
	// startNodes is how many of them start at once (default all); the test
	// starts the others. With fewer than a cluster's quorum JetStream has
	// no meta leader and cannot answer.
	startNodes int
	sim        []codeartssim.Option
}

func newSystem(t *testing.T, name string, o sysOptions) *system {
	t.Helper()
	if o.nodes == 0 {
		o.nodes = 1
	}
	if o.startNodes == 0 {
		o.startNodes = o.nodes
	}
	for _, bin := range []string{workerBin(), natsBin()} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run `make e2e` (it builds bin/worker and installs the pinned bin/nats-server)", bin)
		}
	}
	s := &system{
		t: t, name: name, dir: t.TempDir(), secrets: newCanaries(), procs: &procSet{},
		items: map[uint64]*item{},
	}
	t.Cleanup(s.procs.killAll)
	s.nodes = newNATSNodes(t, s.dir, o.nodes, s.secrets.natsPassword, s.procs)
	for _, n := range s.nodes[:o.startNodes] {
		n.start()
	}
	if o.startNodes == o.nodes {
		// /healthz is 200 only once JetStream is current with a meta
		// leader: no worker starts while the cluster still elects one.
		for _, n := range s.nodes {
			n.waitHealthy(30 * time.Second)
		}
	} else {
		for _, n := range s.nodes[:o.startNodes] {
			n.waitUp(30 * time.Second)
		}
	}
	s.sim = startSim(t, s.secrets, o.sim...)

	nc, err := nats.Connect(urls(s.nodes),
		nats.UserInfo(natsUser, s.secrets.natsPassword),
		nats.Name("e2e-test"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// workerProc is one worker "replica": a name, its flags and its log, and
// the process currently running it (a new one after each restart).
type workerProc struct {
	s        *system
	name     string
	args     []string
	env      []string
	log      string
	httpAddr string
	p        *proc
	starts   int
	peakRSS  int64 // highest VmHWM seen across its processes
}

// worker starts a worker connected to every NATS node; see workerVia.
func (s *system) worker(name string, flags ...string) *workerProc {
	return s.workerVia(name, urls(s.nodes), flags...)
}

// workerVia starts `worker run` against natsURL and the simulator, with the
// canary credentials in its environment (the NATS password too, so it is
// never on a command line) and flags appended to the common ones (a flag
// given twice takes the later value). The first worker of a system creates
// the streams; workerVia waits until it is ready (streams, consumers and
// advisory consumer in place), so later workers never race its start-up.
func (s *system) workerVia(name, natsURL string, flags ...string) *workerProc {
	s.t.Helper()
	w := s.spawnWorker(name, natsURL, flags...)
	s.workers = append(s.workers, w)
	if len(s.workers) == 1 {
		s.waitStreams(w)
	}
	return w
}

// spawnWorker starts a worker as workerVia does, without waiting for
// anything and without adding it to s.workers.
func (s *system) spawnWorker(name, natsURL string, flags ...string) *workerProc {
	s.t.Helper()
	port := freePorts(s.t, 1)[0]
	w := &workerProc{
		s: s, name: name, log: filepath.Join(s.dir, name+".log"),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", port),
	}
	w.args = append([]string{
		"run",
		"--nats-url", natsURL,
		"--endpoint", s.sim.url,
		"--ack-wait", ackWait.String(),
		"--http-addr", w.httpAddr,
		"--ui-addr", "", // the default address is one per machine
		"--drain-timeout", "5s",
		"--backoff-initial", "100ms",
		"--backoff-max", "1s",
		"--log-format", "json",
		"--log-level", "info",
	}, flags...)
	home := filepath.Join(s.dir, "home-"+name)
	_ = os.MkdirAll(home, 0o700)
	w.env = []string{
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
		"POD_NAME=" + name,
		"HUAWEICLOUD_SDK_AK=" + s.secrets.ak,
		"HUAWEICLOUD_SDK_SK=" + s.secrets.sk,
		"HUAWEICLOUD_SDK_PROJECT_ID=" + s.secrets.projectID,
		"RECOVER_NATS_USER=" + natsUser,
		"RECOVER_NATS_PASSWORD=" + s.secrets.natsPassword,
	}
	w.start()
	return w
}

func (w *workerProc) start() {
	w.s.t.Helper()
	p, err := startProc(w.name, w.log, workerBin(), w.args, w.env)
	if err != nil {
		w.s.t.Fatal(err)
	}
	w.p = p
	w.starts++
	w.s.procs.add(p)
}

// sampleRSS remembers the process's peak RSS (call before killing it).
func (w *workerProc) sampleRSS() {
	if rss, err := w.p.peakRSS(); err == nil && rss > w.peakRSS {
		w.peakRSS = rss
	}
}

// kill SIGKILLs the worker: no drain, no nak, no flush.
func (w *workerProc) kill() {
	w.sampleRSS()
	w.s.t.Logf("SIGKILL worker %s (pid %d)", w.name, w.p.pid())
	w.p.kill()
}

func (w *workerProc) signal(sig syscall.Signal) {
	w.s.t.Logf("%s worker %s (pid %d)", sig, w.name, w.p.pid())
	if err := w.p.signal(sig); err != nil {
		w.s.t.Fatal(err)
	}
}

// checkAlive fails the test if a worker process ended without the test
// ending it.
func (s *system) checkAlive() {
	s.t.Helper()
	for _, w := range s.workers {
		if w.p.exited() {
			s.t.Fatalf("worker %s (pid %d) exited by itself: %v; log:\n%s", w.name, w.p.pid(), w.p.err, logTail(w.log, 40))
		}
	}
}

// ready reports whether the worker's /readyz answers 200.
func (w *workerProc) ready() bool {
	code, _ := probe(w.httpAddr, "/readyz")
	return code == http.StatusOK
}

// waitStreams waits until the worker has created the streams and consumer
// and is ready (its advisory consumer bound too).
func (s *system) waitStreams(w *workerProc) {
	s.t.Helper()
	ok := waitFor(60*time.Second, func() bool {
		if w.p.exited() {
			return true
		}
		if !w.ready() {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := s.js.Consumer(ctx, requestStream, consumerName); err != nil {
			return false
		}
		for _, st := range []string{dlqStream, resultStream} {
			if _, err := s.js.Stream(ctx, st); err != nil {
				return false
			}
		}
		return true
	})
	s.checkAlive()
	if !ok {
		s.t.Fatalf("worker %s did not create the streams and consumer and become ready within 60s; log:\n%s", w.name, logTail(w.log, 40))
	}
}

// enqueue publishes every item with Nats-Msg-Id and records the stream
// sequence the server acknowledged for it. It publishes asynchronously in
// windows of 256 and waits for each window's acks.
func (s *system) enqueue(items []*item) {
	s.t.Helper()
	s.start = time.Now()
	const window = 256
	for lo := 0; lo < len(items); lo += window {
		chunk := items[lo:min(lo+window, len(items))]
		futures := make([]jetstream.PubAckFuture, len(chunk))
		for i, it := range chunk {
			f, err := s.js.PublishMsgAsync(it.msg(), jetstream.WithMsgID(it.msgID))
			if err != nil {
				s.t.Fatalf("publish %s: %v", it.msgID, err)
			}
			futures[i] = f
		}
		for i, f := range futures {
			s.record(chunk[i], f)
		}
	}
	s.t.Logf("enqueued %d requests in %.1fs", len(items), time.Since(s.start).Seconds())
}

func (s *system) record(it *item, f jetstream.PubAckFuture) {
	s.t.Helper()
	var seq uint64
	select {
	case ack := <-f.Ok():
		seq = ack.Sequence
	case err := <-f.Err():
		// Retry with the same Nats-Msg-Id: if the first one was stored,
		// the server answers with its sequence.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err2 := s.js.PublishMsg(ctx, it.msg(), jetstream.WithMsgID(it.msgID))
		cancel()
		if err2 != nil {
			s.t.Fatalf("publish %s: %v, then %v", it.msgID, err, err2)
		}
		seq = ack.Sequence
	case <-time.After(30 * time.Second):
		s.t.Fatalf("publish %s: no ack within 30s", it.msgID)
	}
	if prev, dup := s.items[seq]; dup {
		s.t.Fatalf("stream sequence %d acked for both %s and %s", seq, prev.msgID, it.msgID)
	}
	s.items[seq] = it
}

// msgs is the number of messages in a stream, or -1 if it cannot be read
// right now (a node is down, a leader election is under way).
func (s *system) msgs(stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	return int(st.CachedInfo().State.Msgs)
}

// terminals is how many requests have reached a terminal state so far:
// the result events stored (one per request, deduped by stream sequence).
func (s *system) terminals() int { return s.msgs(resultStream) }

// waitTerminals waits until at least k requests are terminal; a fault is
// injected at that point of the run.
func (s *system) waitTerminals(k int, timeout time.Duration) {
	s.t.Helper()
	ok := waitFor(timeout, func() bool {
		for _, w := range s.workers {
			if w.p.exited() {
				return true
			}
		}
		return s.terminals() >= k
	})
	s.checkAlive()
	if !ok {
		s.t.Fatalf("%d terminal requests not reached within %s (have %d, request stream holds %d)",
			k, timeout, s.terminals(), s.msgs(requestStream))
	}
}

// waitDrained waits until the request stream is empty: every request acked
// (work-queue retention removes a message only when it is acked, and the
// worker acks only after storing the dead letter and the result event).
func (s *system) waitDrained(timeout time.Duration) (seconds float64, ok bool) {
	s.t.Helper()
	ok = waitFor(timeout, func() bool {
		for _, w := range s.workers {
			if w.p.exited() {
				return true
			}
		}
		return s.msgs(requestStream) == 0
	})
	s.checkAlive()
	return time.Since(s.start).Seconds(), ok
}

// readStream returns the payload of every message in a stream, trying
// again for up to a minute while the cluster settles after a node restart
// (a stream without a leader answers "no responders").
func (s *system) readStream(name string) ([][]byte, error) {
	var (
		out [][]byte
		err error
	)
	waitFor(time.Minute, func() bool {
		out, err = s.readStreamOnce(name)
		if err != nil {
			s.t.Logf("read %s: %v (trying again)", name, err)
		}
		return err == nil
	})
	return out, err
}

func (s *system) readStreamOnce(name string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, state.Msgs)
	for {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			out = append(out, m.Data())
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if md.Sequence.Stream >= state.LastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: got %d of %d messages: %w", name, len(out), state.Msgs, ctx.Err())
		}
	}
}

// metrics returns the worker's /metrics body, or "" if it serves none.
func (w *workerProc) metrics() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}

// finishOptions tune what finish accepts.
type finishOptions struct {
	drainTimeout time.Duration
	oracle       oracleOptions
	// maxRSS fails the test if a worker's peak RSS exceeds it (0 = report only).
	maxRSS int64
}

// finish waits for the run to drain, stops the workers with SIGTERM (so a
// paused or slow worker finishes what it holds before the oracle reads),
// reads the outcome streams and judges them, checks for secrets and panics
// in everything the workers wrote, and logs the figures line.
func (s *system) finish(o finishOptions) figures {
	s.t.Helper()
	f, problems := s.settle(o)
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	for _, p := range problems {
		s.t.Error(p)
	}
	if s.t.Failed() {
		for _, w := range s.workers {
			s.t.Logf("worker %s log tail:\n%s", w.name, logTail(w.log, 15))
		}
	}
	return f
}

// settle does what finish does up to the verdict: it returns the figures
// (also logged) and every problem found, and keeps the result events and
// dead letters it read in s.results and s.deadLetters.
func (s *system) settle(o finishOptions) (figures, []string) {
	s.t.Helper()
	secs, drained := s.waitDrained(o.drainTimeout)
	if !drained {
		s.t.Errorf("not drained within %s: %d requests still in the stream", o.drainTimeout, s.msgs(requestStream))
	}

	var outputs []named
	for _, w := range s.workers {
		w.sampleRSS()
		if m := w.metrics(); m != "" {
			outputs = append(outputs, named{w.name + " /metrics", []byte(m)})
		} else {
			s.t.Logf("worker %s serves no /metrics on %s: not scanned for secrets", w.name, w.httpAddr)
		}
	}
	for _, w := range s.workers {
		if err := w.p.stop(20 * time.Second); err != nil {
			s.t.Errorf("worker %s: SIGTERM did not end it cleanly: %v; log:\n%s", w.name, err, logTail(w.log, 20))
		}
	}

	results, err := s.readStream(resultStream)
	if err != nil {
		s.t.Fatalf("read result events: %v", err)
	}
	dls, err := s.readStream(dlqStream)
	if err != nil {
		s.t.Fatalf("read dead letters: %v", err)
	}
	s.results, s.deadLetters = results, dls
	f, problems := judge(s.items, results, dls, s.sim.Stats(), o.oracle)
	f.scenario = s.name
	f.drain = secs
	if !drained {
		f.drain = -1
	}
	for _, w := range s.workers {
		f.extra = append(f.extra, fmt.Sprintf("%s_peak_rss_mib=%.1f", w.name, float64(w.peakRSS)/(1<<20)))
		if o.maxRSS > 0 && w.peakRSS > o.maxRSS {
			problems = append(problems, fmt.Sprintf("worker %s peak RSS %.1f MiB is over %.0f MiB",
				w.name, float64(w.peakRSS)/(1<<20), float64(o.maxRSS)/(1<<20)))
		}
	}
	s.t.Log(f)

	// Secrets and panics.
	for _, w := range s.workers {
		data, err := os.ReadFile(w.log)
		if err != nil {
			s.t.Fatal(err)
		}
		outputs = append(outputs, named{w.name + " output", data})
		nonJSON := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(line, "panic") || strings.Contains(line, "fatal error") || strings.Contains(line, "DATA RACE") {
				problems = append(problems, fmt.Sprintf("worker %s output: %s", w.name, clipLine(line)))
			}
			// Every line is one JSON log entry: input with newlines or
			// ANSI escapes cannot forge or split one.
			if line == "" || strings.HasPrefix(line, "=== e2e:") {
				continue
			}
			if !strings.HasPrefix(line, "{") || !json.Valid([]byte(line)) {
				if nonJSON++; nonJSON <= 3 {
					problems = append(problems, fmt.Sprintf("worker %s output has a line that is not one JSON entry: %q", w.name, clipLine(line)))
				}
			}
		}
	}
	outputs = append(outputs, named{"dead letters", joinLines(dls)}, named{"result events", joinLines(results)})
	for _, out := range outputs {
		for what, secret := range s.secrets.secrets() {
			if strings.Contains(string(out.data), secret) {
				problems = append(problems, fmt.Sprintf("the %s canary appears in %s", what, out.name))
			}
		}
	}
	problems = append(problems, s.sim.wireLeaks()...)
	return f, problems
}

type named struct {
	name string
	data []byte
}

func joinLines(msgs [][]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
		b = append(b, '\n')
	}
	return b
}

func clipLine(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
