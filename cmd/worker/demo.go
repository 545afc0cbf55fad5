//go:build !nodemo

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// demoRegion is the region the demo's client calls.
const demoRegion = "cn-north-4"

type demoOptions struct {
	requests    int
	concurrency int
	latency     time.Duration
	errorRate   float64
	throttle    float64
	gwThrottle  float64
	notFound    float64
	forbidden   float64
	invalid     float64
	timeout     time.Duration
	seed        uint64
	out         outputFlags
	logLevel    string
	rateLimit   float64
	httpAddr    string
	// httpAddrGiven: --http-addr was set, so a taken port is an error
	// rather than a reason to pick another.
	httpAddrGiven bool
	uiAddr        string
	uiAddrGiven   bool
	hold          bool
	uiActions     bool
	// campaignJobs is the size of the simulator's job catalog the demo's
	// campaign discovers (half disabled); 0 = no campaign.
	campaignJobs int
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{
		requests: 1000, concurrency: 32, latency: 20 * time.Millisecond, errorRate: 0.05, throttle: 0.005,
		gwThrottle: 0.001, notFound: 0.03, forbidden: 0.01, invalid: 0.01, timeout: 2 * time.Minute, logLevel: "error",
		httpAddr: "127.0.0.1:8080", uiAddr: "127.0.0.1:8081", campaignJobs: 200,
	}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole system on this machine: embedded NATS, simulated API, N requests",
		Long: `demo starts an embedded NATS server with JetStream (in a temporary directory),
the simulated CodeArts API with faults (latency, 5xx, throttles, 403/404 jobs),
enqueues N recover requests (some invalid), and runs a small campaign beside
them: the simulator holds --campaign-jobs build jobs in two projects, half of
them disabled; the demo discovers the disabled ones (as worker discover does),
enqueues them as campaign "demo" (as enqueue --campaign does), drains
everything with one worker pool through the real SDK, verifies the campaign
by listing the projects again (none of its jobs may still be disabled) and
reads its report (as worker report --campaign demo does). It prints a
summary and exits 0 only when no request was lost (recovered +
dead-lettered = every request enqueued, and no job reported recovered is
still disabled).

While it runs it serves the live status page on --ui-addr (127.0.0.1:8081)
and /metrics on --http-addr (127.0.0.1:8080), or free ports when those are
taken; the page's URL is printed on stderr (with --ui-actions it carries a
token made for this run, in its #fragment). --rate-limit slows the drain enough to watch it; --hold keeps the
worker and the page up after the drain until Ctrl-C.`,
		Example: `  worker demo
  worker demo --requests 5000 --concurrency 64 --json
  worker demo --rate-limit 100 --hold --ui-actions   # open the printed URL`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := o.out.resolve()
			if err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			o.httpAddrGiven = cmd.Flags().Changed("http-addr")
			o.uiAddrGiven = cmd.Flags().Changed("ui-addr")
			report := func(sum demoSummary) error {
				if format != outputTable {
					return writeStructured(cmd.OutOrStdout(), format, sum)
				}
				return sum.print(cmd.OutOrStdout())
			}
			sum, err := runDemo(cmd.Context(), o, cmd.ErrOrStderr(), report)
			if err != nil {
				return err
			}
			if sum.Lost != 0 || sum.FalselyRecovered != 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d requests lost, %d falsely recovered", sum.Lost, sum.FalselyRecovered)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.requests, "requests", o.requests, "number of recover requests")
	fs.IntVar(&o.concurrency, "concurrency", o.concurrency, "pool concurrency")
	fs.DurationVar(&o.latency, "latency", o.latency, "simulated API latency (±50% jitter)")
	fs.Float64Var(&o.errorRate, "error-rate", o.errorRate, "share of calls answered 500/502/503")
	fs.Float64Var(&o.throttle, "throttle-rate", o.throttle, "share of calls answered 500 CB.00060211 (CodeArts' throttle)")
	fs.Float64Var(&o.gwThrottle, "gateway-throttle-rate", o.gwThrottle, "share of calls answered 429 APIG.0308 with Retry-After 1s (pauses the pool)")
	fs.Float64Var(&o.notFound, "not-found", o.notFound, "share of requests for jobs that do not exist (404)")
	fs.Float64Var(&o.forbidden, "forbidden", o.forbidden, "share of requests for jobs without permission (403)")
	fs.Float64Var(&o.invalid, "invalid", o.invalid, "share of invalid (poison) messages")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "give up after this long")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for the simulator's faults (0 = random)")
	addOutputFlags(cmd, &o.out)
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "worker log level (logs go to stderr)")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "API requests per second, 0 = no limit (e.g. 100 to watch the drain on the status page)")
	fs.StringVar(&o.httpAddr, "http-addr", o.httpAddr, "address of /metrics, /healthz and /readyz, a free port when taken (empty = off)")
	fs.StringVar(&o.uiAddr, "ui-addr", o.uiAddr, "address of the status page, a free port when taken (empty = off)")
	fs.BoolVar(&o.hold, "hold", false, "after the drain and the summary, keep the worker and the status page up until Ctrl-C")
	fs.IntVar(&o.campaignJobs, "campaign-jobs", o.campaignJobs, "build jobs in the simulator's two projects, half disabled, for the demo's campaign (0 = no campaign)")
	fs.BoolVar(&o.uiActions, "ui-actions", false, "let the status page replay dead letters (with a token made for this run, printed in the page's URL)")
	return cmd
}

func (o demoOptions) validate() error {
	switch {
	case o.requests < 1:
		return fmt.Errorf("requests: %d is below 1", o.requests)
	case o.campaignJobs < 0:
		return fmt.Errorf("campaign-jobs: %d is negative", o.campaignJobs)
	case o.concurrency < 1:
		return fmt.Errorf("concurrency: %d is below 1", o.concurrency)
	case o.latency < 0:
		return fmt.Errorf("latency: %s is negative", o.latency)
	case o.rateLimit < 0:
		return fmt.Errorf("rate-limit: %g is negative", o.rateLimit)
	case o.hold && o.uiAddr == "":
		return errors.New("hold: needs --ui-addr (there is nothing to look at otherwise)")
	}
	for name, v := range map[string]float64{"error-rate": o.errorRate, "throttle-rate": o.throttle, "gateway-throttle-rate": o.gwThrottle,
		"not-found": o.notFound, "forbidden": o.forbidden, "invalid": o.invalid} {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s: %g is not in [0, 1]", name, v)
		}
	}
	if o.notFound+o.forbidden+o.invalid > 1 {
		return errors.New("not-found + forbidden + invalid: shares add up to more than 1")
	}
	return nil
}

// demoSummary is the demo's result; its JSON is stable for scripts.
type demoSummary struct {
	Requests     int            `json:"requests"`
	Recovered    int            `json:"recovered"`
	DeadLettered map[string]int `json:"dead_lettered"`
	Lost         int            `json:"lost"`
	// FalselyRecovered counts requests reported recovered for jobs the
	// simulated API did not recover: lost too, silently.
	FalselyRecovered int              `json:"falsely_recovered"`
	APICalls         map[string]int64 `json:"api_calls"`
	Retries          map[string]int64 `json:"retries"`
	ElapsedSeconds   float64          `json:"elapsed_seconds"`
	Throughput       float64          `json:"throughput_per_second"`
	// Campaign is the demo's campaign (its requests are counted above
	// too); absent with --campaign-jobs 0.
	Campaign *demoCampaignSummary `json:"campaign,omitempty"`
}

func (s demoSummary) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "requests\t%d\n", s.Requests)
	fmt.Fprintf(tw, "recovered\t%d\n", s.Recovered)
	total := 0
	for _, k := range sortedKeys(s.DeadLettered) {
		total += s.DeadLettered[k]
	}
	fmt.Fprintf(tw, "dead-lettered\t%d\n", total)
	for _, k := range sortedKeys(s.DeadLettered) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, s.DeadLettered[k])
	}
	fmt.Fprintf(tw, "api calls\t\n")
	for _, k := range sortedKeys(s.APICalls) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, s.APICalls[k])
	}
	fmt.Fprintf(tw, "retries\t\n")
	for _, k := range sortedKeys(s.Retries) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, s.Retries[k])
	}
	fmt.Fprintf(tw, "elapsed\t%.2fs\n", s.ElapsedSeconds)
	fmt.Fprintf(tw, "throughput\t%.0f req/s\n", s.Throughput)
	fmt.Fprintf(tw, "lost\t%d\n", s.Lost)
	fmt.Fprintf(tw, "falsely recovered\t%d\n", s.FalselyRecovered)
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Campaign != nil {
		s.Campaign.print(w)
	}
	return nil
}

// demoCounter counts outcomes for progress and the summary.
type demoCounter struct {
	terminal  atomic.Int64
	recovered atomic.Int64
	retries   [len(retryCauses)]atomic.Int64 // by retryCauses

	mu            sync.Mutex
	recoveredJobs []string // checked against the simulator's truth at the end
}

// falselyRecovered counts the jobs reported recovered that the simulated
// API never recovered (a 200 whose body said "fail" taken for success).
func (c *demoCounter) falselyRecovered(sim *codeartssim.Server) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, id := range c.recoveredJobs {
		if sim.Recovered(id) == 0 {
			n++
		}
	}
	return n
}

func (c *demoCounter) Outcome(o worker.Outcome) {
	switch o.Kind {
	case worker.OutcomeRecovered:
		c.recovered.Add(1)
		c.terminal.Add(1)
		c.mu.Lock()
		c.recoveredJobs = append(c.recoveredJobs, o.JobID)
		c.mu.Unlock()
	case worker.OutcomeDeadLettered:
		c.terminal.Add(1)
	}
}

func (c *demoCounter) Call(worker.Call) {}

var retryCauses = [...]string{"throttled", "transient", "redelivery", "unauthorized", "configuration"}

func (c *demoCounter) Retry(cause string, _ time.Duration) {
	for i, k := range retryCauses {
		if k == cause {
			c.retries[i].Add(1)
		}
	}
}

// runDemo runs the demo; report gets the summary once drained (before the
// hold, with --hold).
func runDemo(ctx context.Context, o demoOptions, stderr io.Writer, report func(demoSummary) error) (demoSummary, error) {
	log, err := newLogger(stderr, "console", o.logLevel)
	if err != nil {
		return demoSummary{}, err
	}
	defer func() { _ = log.Sync() }()
	// OTEL_* set: the demo's pool is traced as `worker run`'s is, so a
	// local collector shows what the traces look like.
	tr, err := startTracing(ctx, stderr, func(err error) { log.Warn("tracing", zap.Error(err)) })
	if err != nil {
		return demoSummary{}, err
	}
	defer func() {
		if err := tr.shutdown(); err != nil {
			log.Warn("tracing", zap.Error(err))
		}
	}()
	if tr != nil {
		log.Info("tracing", tr.logFields()...)
	}

	dir, err := os.MkdirTemp("", "recover-demo-")
	if err != nil {
		return demoSummary{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: dir})
	if err != nil {
		return demoSummary{}, err
	}
	defer ns.Shutdown()

	// Fresh credentials: the simulator verifies the SDK's AK/SK signature.
	ak, sk := randomHex(10), randomHex(20)
	simOpts := []codeartssim.Option{
		codeartssim.WithCredentials(ak, sk),
		codeartssim.WithLatency(o.latency, o.latency/2),
		codeartssim.WithErrorRate(o.errorRate, 500, 502, 503),
		codeartssim.WithThrottle(o.gwThrottle),
		codeartssim.WithBackendThrottle(o.throttle),
		codeartssim.WithRetryAfter(time.Second),
		// The other answers of the real API, rarely; none of them recovers
		// the job. No route-404 window and no 200 HTML page: the demo must
		// finish fast and lose nothing.
		codeartssim.WithFailStatus(0.01),
		codeartssim.WithErrorOn200(0.01),
		codeartssim.WithHTMLErrors(0.005),
		codeartssim.WithStringBodies(0.01),
	}
	// The demo's good job ids avoid only the "40" prefixes.
	prefixes := codeartssim.StandardPrefixOutcomes()
	delete(prefixes, "422")
	simOpts = append(simOpts, codeartssim.WithOutcomes(prefixes))
	if o.seed != 0 {
		simOpts = append(simOpts, codeartssim.WithSeed(o.seed))
	}
	if o.campaignJobs > 0 {
		simOpts = append(simOpts, demoCampaignSim(o.campaignJobs, o.seed))
	}
	sim := codeartssim.New(simOpts...)
	if err := sim.Start("127.0.0.1:0"); err != nil { //nolint:contextcheck // serves until Close, deferred below
		return demoSummary{}, err
	}
	defer func() { _ = sim.Close() }()

	api, err := codearts.NewClient(codearts.Config{
		Region: demoRegion, Endpoint: sim.URL(), ProjectID: "demo0000000000000000000000000000",
		Credentials: codearts.Credentials{AK: ak, SK: sk}, Timeout: 10 * time.Second, MaxConns: o.concurrency, Logger: log,
	})
	if err != nil {
		return demoSummary{}, err
	}
	defer func() { _ = api.Close() }()

	qcfg := queue.Config{URL: ns.URL(), AckWait: 3 * time.Second, FetchWait: time.Second, Logger: log}
	conn, err := queue.Connect(ctx, qcfg)
	if err != nil {
		return demoSummary{}, err
	}
	defer func() { _ = conn.Close(5 * time.Second) }()
	if err := conn.Ensure(ctx); err != nil {
		return demoSummary{}, err
	}
	qcfg = conn.Config()

	if err := enqueueDemo(ctx, conn, o); err != nil {
		return demoSummary{}, err
	}

	counter := &demoCounter{}
	page, err := startDemoPage(ctx, o, log, stderr)
	if err != nil {
		return demoSummary{}, err
	}
	defer page.close()
	// Built as worker run builds it (wire.NewPool): the same sweep, requeue,
	// consumer pause, classification and fleet rate.
	pool, err := wire.NewPool(ctx, conn, api, worker.Config{
		Concurrency: o.concurrency, Name: "demo", Logger: log,
		Observer: worker.Observers{counter, page.metrics}, Tracer: tr.provider(), Propagator: tr.propagator(),
	}, wire.PoolOptions{Rate: o.rateLimit})
	if err != nil {
		return demoSummary{}, err
	}
	limiter := pool.Limiter
	page.attach(conn, pool.Pool, limiter, o, log)

	// The campaign: discovered under the pool's own limiter (the fleet's
	// rate of the region: discovery spends the same quota), enqueued beside
	// the demo's requests, drained by the same pool.
	var camp *demoCampaignSummary
	requests := o.requests
	if o.campaignJobs > 0 {
		if camp, err = discoverDemoCampaign(ctx, conn, api, sim, limiter); err != nil {
			return demoSummary{}, err
		}
		requests += len(camp.ids)
	}

	start := time.Now()
	poolCtx, stopPool := context.WithCancel(ctx)
	defer stopPool()
	done := make(chan error, 1)
	go func() { done <- pool.Run(poolCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopPool()
		return <-done
	}
	defer func() { _ = stop() }()

	drainCtx, stopDrain := context.WithTimeout(ctx, o.timeout)
	defer stopDrain()
	bar := newProgressReporter(stderr, "draining", requests, !isTerminal(stderr), time.Second) // a bar on a terminal, else nothing
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-tick.C:
			n := int(counter.terminal.Load())
			bar.update(n)
			if n >= requests {
				break wait
			}
		case <-drainCtx.Done():
			break wait
		}
	}
	elapsed := time.Since(start)
	if !o.hold {
		if err := stop(); err != nil {
			return demoSummary{}, err
		}
	}
	bar.finish()

	// The figures come from the streams and the simulator, not only from
	// the pool's own counters.
	sum := demoSummary{
		Requests: requests, Recovered: int(counter.recovered.Load()), DeadLettered: map[string]int{},
		APICalls: map[string]int64{}, Retries: map[string]int64{}, ElapsedSeconds: elapsed.Seconds(),
	}
	err = conn.Scan(ctx, qcfg.DLQStream, func(m queue.StoredMsg) error {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return err
		}
		sum.DeadLettered[d.Reason]++
		return nil
	})
	if err != nil {
		return demoSummary{}, err
	}
	dead := 0
	for _, v := range sum.DeadLettered {
		dead += v
	}
	sum.Lost = requests - sum.Recovered - dead
	sum.FalselyRecovered = counter.falselyRecovered(sim)
	if camp != nil {
		if err := camp.finish(ctx, conn, api, sim, limiter); err != nil {
			return demoSummary{}, err
		}
		sum.Campaign = camp
		sum.Lost += camp.lost()
	}
	for status, n := range sim.Stats().ByStatus {
		sum.APICalls[fmt.Sprint(status)] = n
	}
	for i, k := range retryCauses {
		sum.Retries[k] = counter.retries[i].Load()
	}
	if elapsed > 0 {
		sum.Throughput = float64(sum.Recovered+dead) / elapsed.Seconds()
	}
	log.Info("demo finished", zap.Int("recovered", sum.Recovered), zap.Int("dead_lettered", dead), zap.Int("lost", sum.Lost))
	if err := report(sum); err != nil {
		return sum, err
	}
	if o.hold && ctx.Err() == nil {
		fmt.Fprintf(stderr, "drained; the status page stays at %s until Ctrl-C\n", page.url)
		<-ctx.Done()
	}
	return sum, stop()
}

// enqueueDemo publishes the demo's requests with a mix of body forms, as
// they are (raw messages: the bad ones must reach the worker), through the
// producer library's batch.
func enqueueDemo(ctx context.Context, conn *queue.Conn, o demoOptions) error {
	qcfg := conn.Config()
	client, err := producer.New(conn.NC, producer.Config{Subject: qcfg.Subject, Stream: qcfg.Stream})
	if err != nil {
		return err
	}
	var failed error // the batch's goroutine owns it until Close returns
	batch, err := client.NewBatch(producer.BatchConfig{OnResult: func(r producer.BatchResult) {
		if r.Err != nil && failed == nil {
			failed = r.Err
		}
	}})
	if err != nil {
		return err
	}
	// Exact shares of each kind, in random order: bad jobs arrive among
	// good ones, as they do after an incident, not as one block (thirty
	// 403s in a row is what a missing IAM permission looks like).
	order := mrand.Perm(o.requests) //nolint:gosec // shuffling demo data
	for i := range o.requests {
		frac := (float64(order[i]) + 0.5) / float64(o.requests)
		var body, id string
		switch {
		case frac < o.notFound:
			id = ("404" + randomHex(16))[:32]
		case frac < o.notFound+o.forbidden:
			id = ("403" + randomHex(16))[:32]
		case frac < o.notFound+o.forbidden+o.invalid:
			body = fmt.Sprintf(`{"job_id":"../../etc/passwd-%d"}`, i)
		default:
			// A good job: never one of the simulator's 400/403/404 prefixes.
			for id = randomHex(16); strings.HasPrefix(id, "40"); id = randomHex(16) {
			}
		}
		if id != "" {
			switch i % 3 {
			case 0:
				body = id
			case 1:
				body = fmt.Sprintf(`{"job_id":%q,"reason":"demo","requested_by":"worker demo"}`, id)
			default:
				body = fmt.Sprintf(`{"specversion":"1.0","id":"demo-%d","source":"worker/demo","type":"codearts.build.recover","data":{"job_id":%q}}`, i, id)
			}
		}
		if err := batch.Publish(ctx, producer.Message{JobID: id, MsgID: id, Data: []byte(body)}, uint64(i)); err != nil {
			batch.Close()
			return err
		}
	}
	batch.Close()
	return failed
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
