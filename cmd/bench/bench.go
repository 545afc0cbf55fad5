package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// scenario is one row of the table.
type scenario struct {
	name string
	desc string
	n    int
	// The simulated API.
	latency   time.Duration
	errorRate float64 // share of calls answered 500
	notFound  float64 // share of requests for jobs that answer 404
	forbidden float64 // share of requests for jobs that answer 403
	quota     float64 // calls/s the API admits; above it 429 (0 = none)
	outageAt  time.Duration
	outageFor time.Duration
	// The worker.
	rateLimit float64       // --rate-limit
	killAt    time.Duration // SIGKILL the worker this long into the drain, restart at once
	noNaive   bool          // the naive peer has no knob this scenario varies
}

// ideal is the drain time the API allows: N·L/C when latency-bound, N/R
// under a quota, plus an outage's length (nothing can progress during it).
func (s scenario) ideal(c int) time.Duration {
	d := time.Duration(float64(s.n) * float64(s.latency) / float64(c))
	if s.quota > 0 {
		d = max(d, time.Duration(float64(s.n)/s.quota*float64(time.Second)))
	}
	return d + s.outageFor
}

func scenarios() []scenario {
	return []scenario{
		{name: "zero", desc: "zero latency: the worker's own overhead", n: 20000},
		{name: "latency", desc: "50 ms latency, ideal N·L/C", n: 5000, latency: 50 * time.Millisecond},
		{name: "quota", desc: "300 req/s quota, --rate-limit 300, 5% 500s, 2% 404, 1% 403, 20 ms latency", n: 6000,
			latency: 20 * time.Millisecond, errorRate: 0.05, notFound: 0.02, forbidden: 0.01, quota: 300, rateLimit: 300},
		{name: "quota-adaptive", desc: "as quota, without --rate-limit (the adaptive rate alone)", n: 6000,
			latency: 20 * time.Millisecond, errorRate: 0.05, notFound: 0.02, forbidden: 0.01, quota: 300, noNaive: true},
		{name: "outage", desc: "8 s API outage (503) starting 0.5 s into a 20 ms drain; ideal N·L/C + 8 s", n: 3000,
			latency: 20 * time.Millisecond, outageAt: 500 * time.Millisecond, outageFor: 8 * time.Second},
		{name: "sigkill", desc: "50 ms drain, worker SIGKILLed at 2 s and restarted at once; ideal N·L/C", n: 5000,
			latency: 50 * time.Millisecond, killAt: 2 * time.Second},
	}
}

type benchOptions struct {
	scenarios   []string
	n           int
	scale       float64
	concurrency int
	ackWait     time.Duration
	logLevel    string
	naive       []string // scenarios the naive peer also runs
	only        string   // "", "pool" or "naive"
	worker      string   // "run" or "builtin"
	workerBin   string
	profileDir  string
	jsonOut     bool
	repeat      int
	tls         string // "", "h1" or "h2"
	workerFlags []string
	self        string
	logDir      string
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	names := make([]string, 0, len(scenarios()))
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	var o benchOptions
	list := fs.String("scenarios", strings.Join(names, ","), "comma-separated scenarios to run: "+strings.Join(names, ", "))
	fs.IntVar(&o.n, "n", 0, "requests per scenario (0 = each scenario's own N)")
	fs.Float64Var(&o.scale, "scale", 1, "multiply each scenario's N (e.g. 0.2 for a quick run)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "worker concurrency")
	fs.DurationVar(&o.ackWait, "ack-wait", 3*time.Second, "consumer AckWait (worker run's default is 3s)")
	fs.StringVar(&o.logLevel, "log-level", "info", "worker log level (worker run's default is info); logs are kept in -log-dir")
	naiveList := fs.String("naive", "", `also run the naive peer (nats.go pull + a goroutine per message + cenkalti/backoff + the SDK's defaults) side by side in these scenarios ("all" for every one)`)
	fs.StringVar(&o.only, "peer", "", `run only this peer: "pool" or "naive" (default: pool, plus naive with -naive)`)
	fs.StringVar(&o.worker, "worker", "run", `the worker process: "run" (the product binary's `+"`worker run`"+`) or "builtin" (this binary wired as run.go wires the pool, with timings and -profile; the naive peer is always builtin)`)
	fs.StringVar(&o.workerBin, "worker-bin", "", "the `worker` binary for -worker run (default: go build ./cmd/worker into a temporary directory)")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU and allocation profiles of each worker into this directory (profiling costs CPU: do not compare CPU figures of profiled runs)")
	fs.StringVar(&o.logDir, "log-dir", "", "keep worker and simulator logs here (default: discarded with the run's temporary directory)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as JSON instead of a table")
	fs.IntVar(&o.repeat, "repeat", 1, "run every scenario this many times (peers interleaved) and print the medians: CPU and ratios vary by 10-15% from run to run on a shared machine")
	fs.StringVar(&o.tls, "tls", "", `serve the simulated API over HTTPS, as the real one is: "h2" (ALPN offers HTTP/2) or "h1" (HTTP/1.1 only); default plain HTTP`)
	xflags := fs.String("worker-flags", "", `extra flags for the built-in worker, space separated, for experiments (e.g. "-x-rate-burst 1"; see "bench _worker -h")`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	o.self = self
	o.workerFlags = strings.Fields(*xflags)
	for _, s := range strings.Split(*list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.scenarios = append(o.scenarios, s)
		}
	}
	var run []scenario
	for _, name := range o.scenarios {
		found := false
		for _, s := range scenarios() {
			if s.name == name {
				run = append(run, s)
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (have %s)\n", name, strings.Join(names, ", "))
			return 2
		}
	}
	for _, s := range strings.Split(*naiveList, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "all":
			o.naive = append(o.naive, names...)
		default:
			o.naive = append(o.naive, s)
		}
	}
	peersFor := func(sc scenario) []string {
		switch {
		case o.only != "":
			return []string{o.only}
		case slices.Contains(o.naive, sc.name) && !sc.noNaive:
			return []string{"pool", "naive"}
		}
		return []string{"pool"}
	}
	if o.repeat < 1 {
		fmt.Fprintf(os.Stderr, "bench: -repeat %d: want 1 or more\n", o.repeat)
		return 2
	}
	if o.only != "" && o.only != "pool" && o.only != "naive" {
		fmt.Fprintf(os.Stderr, "bench: -peer %q: want pool or naive\n", o.only)
		return 2
	}
	if o.tls != "" && o.tls != "h1" && o.tls != "h2" {
		fmt.Fprintf(os.Stderr, "bench: -tls %q: want h1 or h2\n", o.tls)
		return 2
	}
	if o.worker != "run" && o.worker != "builtin" {
		fmt.Fprintf(os.Stderr, "bench: -worker %q: want run or builtin\n", o.worker)
		return 2
	}
	if o.profileDir != "" && o.worker == "run" {
		fmt.Fprintln(os.Stderr, "bench: -profile needs -worker builtin (worker run serves no pprof)")
		return 2
	}
	if o.worker == "run" && o.workerBin == "" && o.only != "naive" {
		bin, cleanup, err := buildWorker()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer cleanup()
		o.workerBin = bin
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o750); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}

	rep := report{Machine: machineInfo(), Worker: o.worker, TLS: o.tls, Concurrency: o.concurrency, AckWait: o.ackWait.String(), LogLevel: o.logLevel}
	failed := false
	for _, sc := range run {
		if o.n > 0 {
			sc.n = o.n
		}
		sc.n = max(1, int(math.Round(float64(sc.n)*o.scale)))
		for run := 1; run <= o.repeat; run++ {
			for _, peer := range peersFor(sc) {
				fmt.Fprintf(os.Stderr, "bench: %s (%s) N=%d run %d/%d: %s\n", sc.name, peer, sc.n, run, o.repeat, sc.desc)
				r, err := runScenario(o, sc, peer)
				r.Run = run
				if err != nil {
					fmt.Fprintf(os.Stderr, "bench: %s (%s): %v\n", sc.name, peer, err)
					r.Error = err.Error()
					failed = true
				}
				if r.Lost > 0 {
					failed = true
				}
				fmt.Fprintf(os.Stderr, "bench: %s\n", r.line())
				rep.Results = append(rep.Results, r)
			}
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1
		}
	} else {
		rep.print(os.Stdout)
	}
	if failed {
		return 1
	}
	return 0
}

// runScenario runs one scenario with one peer, from a fresh nats-server and
// simulator to the oracle.
func runScenario(o benchOptions, sc scenario, peer string) (result, error) {
	r := result{Scenario: sc.name, Peer: peer, N: sc.n, IdealS: sc.ideal(o.concurrency).Seconds(), Lost: -1}
	if sc.quota > 0 {
		r.Notes = fmt.Sprintf("ideal N/R; the %.0f%% 500s need ≈%.0f%% more calls than N", sc.errorRate*100, sc.errorRate*100)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "recover-bench-")
	if err != nil {
		return r, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logDir := dir
	if o.logDir != "" {
		logDir = o.logDir
		if err := os.MkdirAll(logDir, 0o750); err != nil {
			return r, err
		}
	}
	logFile := func(name string) (*os.File, error) {
		return os.Create(filepath.Join(logDir, fmt.Sprintf("%s-%s-%s.log", sc.name, peer, name))) //nolint:gosec // a directory the user named, names we make
	}

	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		return r, err
	}
	defer ns.Shutdown()

	simLog, err := logFile("sim")
	if err != nil {
		return r, err
	}
	defer func() { _ = simLog.Close() }()
	simArgs := []string{roleSim, "-latency", sc.latency.String(), "-error-rate", fmt.Sprint(sc.errorRate),
		"-rate-limit", fmt.Sprint(sc.quota)}
	var childEnv []string
	certFile := ""
	if o.tls != "" {
		cert, key, err := selfSigned(dir)
		if err != nil {
			return r, err
		}
		certFile = cert
		simArgs = append(simArgs, "-tls-cert", cert, "-tls-key", key)
		if o.tls == "h1" {
			simArgs = append(simArgs, "-h1")
		}
		childEnv = append(childEnv, "SSL_CERT_FILE="+cert)
	}
	hc, err := simClient(certFile)
	if err != nil {
		return r, err
	}
	sim, err := spawn("simulator", o.self, simArgs, nil, simLog)
	if err != nil {
		return r, err
	}
	defer func() {
		_ = sim.stdin.Close()
		_ = sim.cmd.Process.Signal(os.Interrupt)
		_ = sim.wait(10 * time.Second)
	}()
	simURL, err := sim.expect("url ", 30*time.Second)
	if err != nil {
		return r, err
	}

	conn, err := queue.Connect(ctx, queueConfig(ns.URL(), o.ackWait))
	if err != nil {
		return r, err
	}
	defer func() { _ = conn.Close(5 * time.Second) }()
	if err := conn.Ensure(ctx); err != nil {
		return r, err
	}
	qcfg := conn.Config()
	ids, err := enqueue(ctx, conn, sc)
	if err != nil {
		return r, fmt.Errorf("enqueue: %w", err)
	}

	workerLog, err := logFile("worker")
	if err != nil {
		return r, err
	}
	defer func() { _ = workerLog.Close() }()
	starts := 0
	startWorker := func() (*workerProc, error) {
		starts++
		if o.worker == "run" && peer == "pool" {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			args := []string{"run", "--nats-url", ns.URL(), "--endpoint", simURL, "--project-id", benchProjectID,
				"--concurrency", strconv.Itoa(o.concurrency), "--ack-wait", o.ackWait.String(),
				"--rate-limit", fmt.Sprint(sc.rateLimit), "--http-addr", "127.0.0.1:" + port,
				"--log-level", o.logLevel}
			env := append([]string{"HUAWEICLOUD_SDK_AK=" + benchAK, "HUAWEICLOUD_SDK_SK=" + benchSK}, childEnv...)
			c, err := spawn("worker", o.workerBin, append(args, o.workerFlags...), env, workerLog)
			if err != nil {
				return nil, err
			}
			w := &workerProc{c: c, external: true, readyURL: "http://127.0.0.1:" + port + "/readyz"}
			if err := w.ready(30 * time.Second); err != nil {
				_ = c.cmd.Process.Kill()
				return nil, err
			}
			return w, nil
		}
		args := []string{roleWorker, "-peer", peer, "-nats", ns.URL(), "-endpoint", simURL,
			"-concurrency", strconv.Itoa(o.concurrency), "-ack-wait", o.ackWait.String(),
			"-rate-limit", fmt.Sprint(sc.rateLimit), "-log-level", o.logLevel}
		if o.profileDir != "" {
			base := filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%d", sc.name, peer, starts))
			args = append(args, "-cpuprofile", base+".cpu.pprof", "-memprofile", base+".allocs.pprof")
		}
		args = append(args, o.workerFlags...)
		c, err := spawn("worker", o.self, args, childEnv, workerLog)
		if err != nil {
			return nil, err
		}
		w := &workerProc{c: c}
		if err := w.ready(30 * time.Second); err != nil {
			_ = c.cmd.Process.Kill()
			return nil, err
		}
		return w, nil
	}

	w, err := startWorker()
	if err != nil {
		return r, err
	}
	var use workerUsage
	addUse := func(u workerUsage) {
		use.cpuMicros += u.cpuMicros
		use.rssKiB = max(use.rssKiB, u.rssKiB)
		if u.timings != nil {
			r.Timings = u.timings
		}
	}
	varz0, _ := ns.Server().Varz(nil)
	polls := 0
	t0 := time.Now()
	if err := w.begin(); err != nil {
		addUse(w.kill())
		return r, err
	}
	timeout := 4*sc.ideal(o.concurrency) + 60*time.Second
	outageSent, killed := false, false
	var end time.Time
	var runErr error
	var cumulative []uint64 // results stored by the end of each second
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
poll:
	for range tick.C {
		el := time.Since(t0)
		if sc.outageFor > 0 && !outageSent && el >= sc.outageAt {
			outageSent = true
			if err := startOutage(hc, simURL, sc.outageFor); err != nil {
				runErr = err
				break
			}
		}
		if sc.killAt > 0 && !killed && el >= sc.killAt {
			killed = true
			addUse(w.kill())
			if w, err = startWorker(); err != nil {
				return r, err
			}
			r.Restarts++
			if err := w.begin(); err != nil {
				runErr = err
				break
			}
		}
		info, err := conn.StreamInfo(ctx, qcfg.ResultStream)
		polls++
		if err != nil {
			runErr = err
			break
		}
		if sec := int(el / time.Second); sec >= len(cumulative) {
			cumulative = append(cumulative, make([]uint64, sec+1-len(cumulative))...)
		}
		cumulative[int(el/time.Second)] = info.State.Msgs
		if info.State.Msgs >= uint64(sc.n) { //nolint:gosec // n > 0
			end = info.State.LastTime
			break poll
		}
		if el > timeout {
			runErr = fmt.Errorf("not drained within %s (%d of %d results)", timeout, info.State.Msgs, sc.n)
			end = time.Now()
			break
		}
	}
	varz1, _ := ns.Server().Varz(nil)
	u, err := w.stop()
	addUse(u)
	if varz0 != nil && varz1 != nil {
		// Messages the server received during the drain, less this
		// process's own polls: the worker's NATS traffic.
		r.NATSMsgsPerReq = float64(varz1.InMsgs-varz0.InMsgs-int64(polls)) / float64(sc.n)
	}
	if err != nil && runErr == nil {
		runErr = err
	}
	if end.IsZero() {
		end = time.Now()
	}
	r.WallS = end.Sub(t0).Seconds()
	var prev uint64
	for _, c := range cumulative {
		c = max(c, prev) // a second without a poll
		r.Timeline = append(r.Timeline, c-prev)
		prev = c
	}
	if r.IdealS > 0 && r.WallS > 0 {
		r.Ratio = r.IdealS / r.WallS
	}
	r.Throughput = float64(sc.n) / r.WallS
	r.WorkerCPUus = float64(use.cpuMicros) / float64(sc.n)
	r.PeakRSSMiB = float64(use.rssKiB) / 1024
	if t := r.Timings; t != nil && r.WallS > 0 && r.Restarts == 0 {
		// Share of the pool's slot-time spent inside a delivery, and inside
		// an API call; the rest is fetch and hand-over.
		slotMS := r.WallS * 1000 * float64(o.concurrency)
		r.SlotBusy = t.Deliveries.Sum / slotMS
		r.SlotInAPI = t.Calls.Sum / slotMS
	}
	if st, err := os.Stat(workerLog.Name()); err == nil {
		r.LogBytes = st.Size()
	}

	stats, err := simStats(hc, simURL)
	if err != nil {
		return r, errors.Join(runErr, err)
	}
	r.Calls = map[string]int64{}
	for code, n := range stats.ByStatus {
		r.Calls[strconv.Itoa(code)] = n
		r.CallsTotal += n
	}
	if r.CallsTotal > 0 {
		r.Share429 = float64(stats.ByStatus[http.StatusTooManyRequests]) / float64(r.CallsTotal)
	}
	for _, j := range stats.Jobs {
		if j.Recovered > 1 {
			r.RepeatedRecovers += j.Recovered - 1
		}
	}
	if err := oracle(ctx, conn, qcfg, ids, &r); err != nil {
		return r, errors.Join(runErr, err)
	}
	// The simulator's own CPU, for the record (it is a separate process).
	_ = sim.stdin.Close()
	_ = sim.cmd.Process.Signal(os.Interrupt)
	if err := sim.wait(10 * time.Second); err == nil {
		r.SimCPUus = float64(sim.cpu()) / float64(sc.n)
	}
	return r, runErr
}

// enqueue publishes the scenario's N requests (with Nats-Msg-Id), a third
// each as a bare id, a JSON object and a CloudEvents event, and returns
// their job ids. Shares of 404 and 403 jobs are spread evenly, so that no
// run of consecutive 403s looks like a missing permission.
func enqueue(ctx context.Context, conn *queue.Conn, sc scenario) ([]string, error) {
	subject := conn.Config().Subject
	every := func(share float64) int {
		if share <= 0 {
			return 0
		}
		return max(1, int(math.Round(1/share)))
	}
	every404, every403 := every(sc.notFound), every(sc.forbidden)
	ids := make([]string, sc.n)
	const window = 2000
	futures := make([]jetstream.PubAckFuture, 0, window)
	flush := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for i := range sc.n {
		prefix := "b" // never 400/403/404: those prefixes script the simulator
		switch {
		case every403 > 0 && i%every403 == every403/3:
			prefix = "403"
		case every404 > 0 && i%every404 == every404/2:
			prefix = "404"
		}
		id := (prefix + randomHex(16))[:32]
		ids[i] = id
		var body string
		switch i % 3 {
		case 0:
			body = id
		case 1:
			body = fmt.Sprintf(`{"job_id":%q,"reason":"bench","requested_by":"recover-bench"}`, id)
		default:
			body = fmt.Sprintf(`{"specversion":"1.0","id":"bench-%d","source":"recover-bench","type":"codearts.build.recover","data":{"job_id":%q}}`, i, id)
		}
		f, err := conn.JS.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(body)}, jetstream.WithMsgID(id))
		if err != nil {
			return nil, err
		}
		futures = append(futures, f)
		if len(futures) == window {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	info, err := conn.StreamInfo(ctx, conn.Config().Stream)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs != uint64(sc.n) { //nolint:gosec // n > 0
		return nil, fmt.Errorf("request stream holds %d messages, want %d", info.State.Msgs, sc.n)
	}
	return ids, nil
}

// oracle reads the result and dead-letter streams back and compares the job
// ids they name with the enqueued ones.
func oracle(ctx context.Context, conn *queue.Conn, qcfg queue.Config, ids []string, r *result) error {
	recovered := map[string]bool{}
	dead := map[string]string{}
	err := conn.Scan(ctx, qcfg.ResultStream, func(m queue.StoredMsg) error {
		var res worker.Result
		if err := json.Unmarshal(m.Data, &res); err != nil {
			return fmt.Errorf("result at %d: %w", m.Seq, err)
		}
		if res.Outcome == worker.OutcomeRecovered {
			recovered[res.JobID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = conn.Scan(ctx, qcfg.DLQStream, func(m queue.StoredMsg) error {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return fmt.Errorf("dead letter at %d: %w", m.Seq, err)
		}
		dead[d.JobID] = d.Reason
		return nil
	})
	if err != nil {
		return err
	}
	r.Lost = 0
	r.DeadLettered = map[string]int{}
	for _, id := range ids {
		reason, isDead := dead[id]
		switch {
		case recovered[id] && isDead:
			r.Both++
			r.Recovered++
		case recovered[id]:
			r.Recovered++
		case isDead:
			r.DeadLettered[reason]++
		default:
			r.Lost++
		}
	}
	return nil
}

func startOutage(hc *http.Client, simURL string, d time.Duration) error {
	resp, err := hc.Post(simURL+"/bench/outage?for="+d.String(), "text/plain", nil) //nolint:noctx // loopback simulator we started; the client has a timeout
	if err != nil {
		return fmt.Errorf("start outage: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("start outage: %s", resp.Status)
	}
	return nil
}

func simStats(hc *http.Client, simURL string) (codeartssim.Stats, error) {
	var st codeartssim.Stats
	resp, err := hc.Get(simURL + "/stats") //nolint:noctx // loopback simulator we started; the client has a timeout
	if err != nil {
		return st, fmt.Errorf("simulator stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("simulator stats: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

// buildWorker builds ./cmd/worker of the module this is run from.
func buildWorker() (string, func(), error) {
	dir, err := os.MkdirTemp("", "recover-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "worker")
	cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-o", bin, "./cmd/worker") //nolint:gosec // bin is our temporary path
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/worker (run from the module root, or pass -worker-bin): %w", err)
	}
	return bin, cleanup, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
