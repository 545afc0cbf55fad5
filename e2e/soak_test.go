//go:build e2e && soak

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// The soak's shape: a 3-node cluster with R3 streams, three worker
// replicas each reaching every node through a proxy of its own (so one
// replica's network can fail alone), producers publishing steadily.
const (
	soakWorkers     = 3
	soakNodes       = 3
	soakRate        = 40              // requests published per second
	soakDrainBound  = 3 * time.Minute // plus the backlog at the API's quota (drainBound)
	soakQuota       = 300             // the API's recovers per second
	soakMaxRSS      = 128 << 20
	soakConcurrency = 16
	// soakGoroutineUp is how many goroutines a drained worker may have above
	// its idle count at the start: two per kept-alive API connection (up to
	// --concurrency, until 90 s idle) and the NATS client's reconnects and
	// subscriptions. A leak per request or per fault goes far past it.
	soakGoroutineUp = 4*soakConcurrency + 16
)

// baseLatency is the API's latency outside the latency fault.
const baseLatency, baseJitter = 20 * time.Millisecond, 30 * time.Millisecond

// soakSettings reads SOAK_SEED (default: drawn and printed) and
// SOAK_DURATION (default 2m).
func soakSettings(t *testing.T) (seed uint64, d time.Duration) {
	seed = rand.Uint64()
	if s := os.Getenv("SOAK_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED: %v", err)
		}
		seed = v
	}
	d = 2 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			t.Fatalf("SOAK_DURATION %q: want a positive duration such as 2m or 1h", s)
		}
		d = v
	}
	return seed, d
}

// TestSoak is the randomized fault soak (`make soak`, e2e/README.md). It
// draws a plan of faults from the seed, runs it against real processes
// while producers publish good, poison, oversized, odd, duplicate and
// CloudEvents requests, lets everything drain once the faults stop, and
// judges the whole history: exactly one terminal outcome per published
// request and none for anything else, nothing dead-lettered that could
// have been recovered, every recovered job recovered by the API, a drain
// within a bound, and no goroutine or memory growth.
func TestSoak(t *testing.T) {
	seed, d := soakSettings(t)
	replay := fmt.Sprintf("SOAK_SEED=%d SOAK_DURATION=%s make soak", seed, d)
	t.Logf("seed %d: %s replays this schedule", seed, replay)
	plan := drawPlan(seed, d, soakWorkers, soakNodes)
	drawn := map[string]int{}
	for _, f := range plan {
		drawn[f.kind]++
	}
	t.Logf("plan: %d faults %v", len(plan), drawn)

	s := newSystem(t, "soak", sysOptions{nodes: soakNodes, sim: []codeartssim.Option{
		codeartssim.WithSeed(seed),
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
		codeartssim.WithLatency(baseLatency, baseJitter),
		codeartssim.WithFailStatus(0.02),
		codeartssim.WithErrorOn200(0.02),
		codeartssim.WithHTMLErrors(0.01),
		codeartssim.WithHTMLSuccess(0.01),
		codeartssim.WithStringBodies(0.2),
		codeartssim.WithErrorRate(0.02, 500, 502, 503, 504),
		codeartssim.WithBackendThrottle(0.002),
		codeartssim.WithRateLimit(soakQuota, soakQuota/10), // the API's quota: a drain after the faults meets it
		codeartssim.WithApplyThenHang(0.003, 12*time.Second),
	}})
	// Each worker reaches each node through a proxy of its own.
	proxies := make([][]*proxy, soakWorkers)
	for i := range soakWorkers {
		var addrs []string
		for _, n := range s.nodes {
			px := newProxy(t, n.url()[len("nats://"):])
			proxies[i] = append(proxies[i], px)
			addrs = append(addrs, "nats://"+px.addr())
		}
		s.workerVia(fmt.Sprintf("w%d", i+1), strings.Join(addrs, ","), "--concurrency", strconv.Itoa(soakConcurrency), "--replicas", "3")
	}
	h := &history{published: map[uint64]publication{}}
	for _, w := range s.workers {
		h.logs = append(h.logs, w.log)
	}
	var idle []int
	for _, w := range s.workers {
		if !waitFor(60*time.Second, w.ready) {
			t.Fatalf("worker %s not ready within 60s; log:\n%s", w.name, logTail(w.log, 30))
		}
		g, ok := metric(w, "go_goroutines")
		if !ok {
			t.Fatalf("worker %s: no go_goroutines in /metrics", w.name)
		}
		idle = append(idle, int(g))
	}

	h.start = time.Now()
	s.start = h.start
	prod := &producer{s: s, r: rand.New(rand.NewPCG(seed, 0x9e0d)), h: h}
	ctx, stopProducing := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Go(func() { prod.run(ctx) })
	t.Cleanup(func() { stopProducing(); pwg.Wait() })

	// The schedule: each fault's begin and end, in time order, performed
	// by this goroutine (a slow step, such as a node catching up, delays
	// the rest but never reorders them).
	run := &faultRunner{s: s, proxies: proxies, h: h}
	type step struct {
		at    time.Duration
		begin bool
		i     int
	}
	var steps []step
	for i, f := range plan {
		steps = append(steps, step{f.at, true, i}, step{f.at + f.dur, false, i})
	}
	slices.SortStableFunc(steps, func(a, b step) int { return int(a.at - b.at) })
	spans := make([]int, len(plan)) // index into h.faults
	// lag is how far the schedule has slipped: a step that overran (a
	// drain on SIGTERM, a node catching up) moves every later step, so the
	// steps keep their planned distances from each other on any machine.
	var lag time.Duration
	for _, st := range steps {
		if wait := time.Until(h.start.Add(st.at + lag)); wait > 0 {
			time.Sleep(wait) // the schedule: faults begin and end at planned times
		} else {
			lag = time.Since(h.start) - st.at
		}
		if st.begin {
			spans[st.i] = len(h.faults)
			h.faults = append(h.faults, faultSpan{f: plan[st.i], begin: time.Now()})
			run.begin(plan[st.i])
			if plan[st.i].dur == 0 {
				h.faults[spans[st.i]].end = time.Now()
			}
			continue
		}
		if plan[st.i].dur > 0 {
			run.end(plan[st.i])
			h.faults[spans[st.i]].end = time.Now()
		}
	}
	if wait := time.Until(h.start.Add(d + lag)); wait > 0 {
		time.Sleep(wait) // the rest of the run without a fault
	}
	stopProducing()
	pwg.Wait()
	faultsEnd := time.Now()
	t.Logf("faults and producers stopped %.1fs after the start: %d published (%d duplicates answered as such, %d refused as oversized)",
		faultsEnd.Sub(h.start).Seconds(), len(prod.items), prod.dups, len(prod.refused))

	// Judge. settle waits for the drain (from faultsEnd) and reads the
	// records; goroutines are counted before it stops the workers.
	s.items = prod.items
	s.start = faultsEnd
	var problems []string
	problems = append(problems, run.problems...)
	problems = append(problems, prod.problems...)
	lastLog := time.Now()
	bound := drainBound(s.msgs(requestStream))
	t.Logf("drain bound %s for a backlog of %d", bound, s.msgs(requestStream))
	drained := waitFor(bound, func() bool {
		left := s.msgs(requestStream)
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			var states []string
			for _, w := range s.workers {
				code, body := probe(w.httpAddr, "/readyz")
				states = append(states, fmt.Sprintf("%s %d %s", w.name, code, strings.TrimSpace(body)))
			}
			t.Logf("draining: %d requests in the stream after %.0fs; readyz: %s; fleet rate: %s", left, time.Since(faultsEnd).Seconds(), strings.Join(states, "; "), fleetRate(s))
		}
		return left == 0
	})
	drainSecs := time.Since(faultsEnd).Seconds()
	t.Logf("drained %.1fs after the faults stopped", drainSecs)
	if !drained {
		problems = append(problems, fmt.Sprintf("not drained within %s of the faults stopping: %d requests still in the stream",
			bound, s.msgs(requestStream)))
	}
	for i, w := range s.workers {
		var g float64
		settled := waitFor(30*time.Second, func() bool {
			g, _ = metric(w, "go_goroutines")
			return int(g) <= idle[i]+soakGoroutineUp
		})
		if !settled {
			problems = append(problems, fmt.Sprintf("worker %s: %d goroutines once drained, %d when idle at the start", w.name, int(g), idle[i]))
		}
	}
	f, found := s.settle(finishOptions{drainTimeout: time.Minute, oracle: oracleOptions{allowMaxDeliveries: true}, maxRSS: soakMaxRSS})
	problems = append(problems, found...)
	f.drain = drainSecs
	problems = append(problems, refusedButStored(prod.refused, s.deadLetters)...)

	var spanSummary []string
	for _, k := range slices.Sorted(maps.Keys(drawn)) {
		spanSummary = append(spanSummary, fmt.Sprintf("%s:%d", k, drawn[k]))
	}
	t.Logf("SOAK seed=%d duration=%s faults=%d{%s} published=%d refused_oversized=%d duplicate_publishes=%d violations=%d",
		seed, d, len(plan), strings.Join(spanSummary, ","), len(prod.items), len(prod.refused), prod.dups, len(problems))
	t.Log(f)
	keepLogs(t, s)
	if len(problems) == 0 {
		return
	}
	stats := s.sim.Stats()
	for _, ex := range h.excerpts(problems, s.results, s.deadLetters, stats, 3) {
		t.Log("\n" + ex)
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Errorf("soak failed with seed %d: %s replays the schedule", seed, replay)
}

// refusedButStored names dead letters of requests the stream refused.
func refusedButStored(refused []*item, dls [][]byte) []string {
	ids := map[string]bool{}
	for _, it := range refused {
		ids[it.msgID] = true
	}
	var out []string
	for _, raw := range dls {
		var d worker.DeadLetter
		if json.Unmarshal(raw, &d) != nil {
			continue // the oracle reports it
		}
		for _, id := range d.Original.Headers["Nats-Msg-Id"] {
			if ids[id] {
				out = append(out, fmt.Sprintf("a dead letter names %s, whose publish the stream refused: %s", id, clipLine(string(raw))))
			}
		}
	}
	return out
}

// metric reads one unlabelled sample from the worker's /metrics.
func metric(w *workerProc, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(w.metrics()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// faultRunner performs faults on the system, from the test goroutine.
type faultRunner struct {
	s        *system
	proxies  [][]*proxy
	h        *history
	problems []string
}

func (r *faultRunner) begin(f fault) {
	s := r.s
	s.t.Logf("%+.1fs fault %s", time.Since(r.h.start).Seconds(), f)
	switch f.kind {
	case faultWorkerKill:
		s.workers[f.target].kill()
	case faultWorkerTerm:
		w := s.workers[f.target]
		// SIGTERM is a request to stop that a worker answers once it
		// runs; one just restarted gets a moment to install its handler
		// (its /healthz answers after that).
		waitFor(30*time.Second, func() bool { code, _ := probe(w.httpAddr, "/healthz"); return code == http.StatusOK })
		w.sampleRSS()
		if err := w.p.stop(30 * time.Second); err != nil {
			r.problems = append(r.problems, fmt.Sprintf("worker %s: SIGTERM did not end it cleanly: %v", w.name, err))
		}
	case faultWorkerStop:
		s.workers[f.target].signal(syscall.SIGSTOP)
	case faultNATSKill:
		s.nodes[f.target].kill()
	case faultBlackhole:
		for _, px := range r.proxies[f.target] {
			px.blackhole()
		}
	case faultReset:
		for _, px := range r.proxies[f.target] {
			px.reset()
		}
	case faultAPIOutage:
		s.sim.SetOutage(true)
	case faultUnauthorized:
		s.sim.Configure(codeartssim.WithUnauthorizedWindow(time.Now(), time.Now().Add(f.dur)))
	case faultRoute404:
		s.sim.Configure(codeartssim.WithRoute404Window(time.Now(), time.Now().Add(f.dur)))
	case faultThrottle:
		s.sim.Configure(codeartssim.WithThrottle(0.6))
	case faultSlow:
		s.sim.Configure(codeartssim.WithLatency(ackWait*3/2, ackWait/2))
	}
}

func (r *faultRunner) end(f fault) {
	s := r.s
	switch f.kind {
	case faultWorkerKill, faultWorkerTerm:
		s.workers[f.target].start()
	case faultWorkerStop:
		s.workers[f.target].signal(syscall.SIGCONT)
	case faultNATSKill:
		n := s.nodes[f.target]
		n.start()
		n.waitHealthy(2 * time.Minute)
	case faultBlackhole:
		for _, px := range r.proxies[f.target] {
			px.restore()
		}
	case faultAPIOutage:
		s.sim.SetOutage(false)
	case faultThrottle:
		s.sim.Configure(codeartssim.WithThrottle(0))
	case faultSlow:
		s.sim.Configure(codeartssim.WithLatency(baseLatency, baseJitter))
	}
}

// producer publishes requests at a steady rate, with Nats-Msg-Id, and
// keeps what the stream acknowledged: the item at each sequence, the
// oversized ones the stream refused.
type producer struct {
	s *system
	r *rand.Rand
	h *history

	// Owned by run until it returns.
	items    map[uint64]*item
	recent   []*item // published in the last seconds: duplicates are drawn from them
	refused  []*item
	dups     int
	problems []string
	n        int
}

func (p *producer) run(ctx context.Context) {
	p.items = map[uint64]*item{}
	tick := time.NewTicker(time.Second / soakRate)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		kind, it := p.draw()
		p.publish(ctx, kind, it)
	}
}

// draw picks the next request: mostly good ids (in every wire form,
// CloudEvents included), client errors, poison, odd bodies under the size
// limit, oversized bodies, repeats of a recent message id and new requests
// for a recent job.
func (p *producer) draw() (string, *item) {
	r := p.r
	p.n++
	x := r.Float64()
	switch {
	case x < 0.05:
		return "client_error", goodItem(r, jobID(r, []string{"400", "404", "422"}[r.IntN(3)]), worker.ReasonClientError)
	case x < 0.10:
		it := badItem(r, p.n)
		it.msgID = fmt.Sprintf("poison-%d", p.n)
		return "poison", it
	case x < 0.13:
		return "odd", oddItem(r, p.n)
	case x < 0.14:
		return "oversized", oversizedItem(r, p.n)
	case x < 0.20 && len(p.recent) > 0:
		prev := p.recent[r.IntN(len(p.recent))]
		return "duplicate", prev
	case x < 0.25 && len(p.recent) > 0:
		prev := p.recent[r.IntN(len(p.recent))]
		if prev.want == outcomeRecovered {
			it := goodItem(r, prev.jobID, outcomeRecovered)
			it.msgID = fmt.Sprintf("%s-again-%d", prev.jobID, p.n)
			return "same_job", it
		}
	}
	return "good", goodItem(r, jobID(r, "ok"), outcomeRecovered)
}

// oddItem is a body a worker must dead-letter whole or as size, SHA-256 and
// prefix: under the request size limit, but many times larger once escaped
// in JSON or base64.
func oddItem(r *rand.Rand, n int) *item {
	size := 8<<10 + r.IntN(56<<10)
	var body []byte
	switch r.IntN(3) {
	case 0:
		body = []byte(strings.Repeat("<", size))
	case 1:
		body = make([]byte, size)
		for i := range body {
			body[i] = byte(r.IntN(256))
		}
		body[0] = 0xff
	default:
		body = []byte(strings.Repeat("\x01&>", size/3))
	}
	return &item{msgID: fmt.Sprintf("odd-%d", n), body: body, want: worker.ReasonInvalidRequest, bad: true}
}

// oversizedItem is larger than the request stream's MaxMsgSize but under
// NATS's max_payload: the stream must refuse it at publish.
func oversizedItem(r *rand.Rand, n int) *item {
	var body []byte
	if r.IntN(2) == 0 {
		body = []byte(strings.Repeat("<", 200<<10))
	} else {
		body = make([]byte, 850_000)
		for i := range body {
			body[i] = byte(r.IntN(256))
		}
	}
	return &item{msgID: fmt.Sprintf("oversized-%d", n), body: body, want: worker.ReasonInvalidRequest, bad: true}
}

// publish publishes it until the stream acknowledges or refuses it (a
// node may be down, a leader election under way: the same Nats-Msg-Id
// makes retries safe), then records the outcome.
func (p *producer) publish(ctx context.Context, kind string, it *item) {
	giveUp := time.Now().Add(2 * time.Minute)
	for {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ack, err := p.s.js.PublishMsg(pctx, it.msg(), jetstream.WithMsgID(it.msgID))
		cancel()
		if err == nil {
			p.record(kind, it, ack)
			return
		}
		if errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			if kind != "oversized" {
				p.problems = append(p.problems, fmt.Sprintf("publish %s (%s, %d bytes): refused as oversized", it.msgID, kind, len(it.body)))
			}
			p.refused = append(p.refused, it)
			return
		}
		if time.Now().After(giveUp) {
			p.problems = append(p.problems, fmt.Sprintf("publish %s: no ack within 2 minutes: %v", it.msgID, err))
			return
		}
		select {
		case <-ctx.Done():
			if kind != "duplicate" {
				// It may or may not be stored: keep trying, so the test
				// knows which.
				ctx = context.Background()
			} else {
				return
			}
		case <-time.After(200 * time.Millisecond): // a retry's pause, not synchronisation
		}
	}
}

func (p *producer) record(kind string, it *item, ack *jetstream.PubAck) {
	if kind == "oversized" {
		p.problems = append(p.problems, fmt.Sprintf("publish %s: the stream stored a %d-byte body at seq %d", it.msgID, len(it.body), ack.Sequence))
	}
	if prev, ok := p.items[ack.Sequence]; ok {
		if prev.msgID != it.msgID {
			p.problems = append(p.problems, fmt.Sprintf("stream sequence %d acked for both %s and %s", ack.Sequence, prev.msgID, it.msgID))
		}
		if ack.Duplicate {
			p.dups++
		}
		return
	}
	if kind == "duplicate" && ack.Duplicate {
		// Within the duplicate window, a sequence the test has not seen
		// yet answers a retry whose first ack was lost.
		p.dups++
	}
	p.items[ack.Sequence] = it
	p.h.published[ack.Sequence] = publication{at: time.Now(), kind: kind, it: it}
	if kind != "duplicate" {
		p.recent = append(p.recent, it)
		if len(p.recent) > 30*soakRate { // the last ~30 s, well inside the 2 m duplicate window
			p.recent = p.recent[len(p.recent)-30*soakRate:]
		}
	}
}

// keepLogs copies every worker and nats-server log into SOAK_LOGS, when
// it names a directory, before the test's temporary directory goes.
func keepLogs(t *testing.T, s *system) {
	dir := os.Getenv("SOAK_LOGS")
	if dir == "" {
		return
	}
	paths := map[string]string{}
	for _, w := range s.workers {
		paths[w.name+".log"] = w.log
	}
	for _, n := range s.nodes {
		paths[n.name+".log"] = n.log
	}
	for name, path := range paths {
		data, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
		if err != nil {
			t.Logf("SOAK_LOGS: %v", err)
		}
	}
	t.Logf("logs kept in %s", dir)
}

// fleetRate is the fleet's shared API rate, as the workers keep it in KV.
func fleetRate(s *system) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, requestStream+"_RATE")
	if err != nil {
		return err.Error()
	}
	e, err := kv.Get(ctx, "fleet")
	if err != nil {
		return err.Error()
	}
	var st struct {
		Rate struct {
			Limit float64 `json:"limit"`
		} `json:"rate"`
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return err.Error()
	}
	if st.Rate.Limit == 0 {
		return "no limit"
	}
	return fmt.Sprintf("%.1f req/s", st.Rate.Limit)
}

// drainBound is how long a backlog left when the faults stop may take to
// drain: the fixed bound (a pause lease, probes, restarts settling) plus the
// backlog at the SPEC's adaptive target, 1.15 × N/R. A fixed 3 minutes
// failed a run whose faults left 63,000 requests: 210 s at the quota alone.
func drainBound(backlog int) time.Duration {
	return soakDrainBound + time.Duration(float64(backlog)*1.15/soakQuota*float64(time.Second))
}
