package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/codearts-recover-worker/codearts-recover-worker/cmd/bench/naive"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// The defaults of `worker run` (cmd/worker/run.go) that the benchmark's
// worker copies; cmd/worker is a main package, so they cannot be imported.
const (
	runFetchWait     = 5 * time.Second
	runMaxDeliver    = 5
	runMaxAckPending = 1000
	runTries         = 3
	runDrainTimeout  = 20 * time.Second
	runMaxBodyBytes  = 64 << 10
	runAPITimeout    = 10 * time.Second
)

// queueConfig is the queue configuration both the orchestrator (which
// creates the streams and consumer before enqueueing) and the worker use,
// so the worker's Ensure changes nothing.
func queueConfig(url string, ackWait time.Duration) queue.Config {
	return queue.Config{
		URL: url, AckWait: ackWait, MaxDeliver: runMaxDeliver, MaxAckPending: runMaxAckPending,
		FetchWait: runFetchWait, Name: "recover-bench",
	}
}

// workerMain is the worker child. Protocol on stdin/stdout, one line each:
// it prints "ready" once connected and bound; on "go" it prints
// "started <cpu µs>" and runs the pool; on "stop" (or stdin closing) it
// prints "stopped <cpu µs>", drains and exits. CPU is getrusage(SELF),
// user + system.
func workerMain(args []string) int {
	fs := flag.NewFlagSet(roleWorker, flag.ContinueOnError)
	peer := fs.String("peer", "pool", "pool (this project's) or naive (nats.go + goroutines + backoff)")
	natsURL := fs.String("nats", "", "NATS URL")
	endpoint := fs.String("endpoint", "", "API endpoint (the simulator)")
	concurrency := fs.Int("concurrency", 64, "concurrency")
	ackWait := fs.Duration("ack-wait", 3*time.Second, "consumer AckWait")
	rateLimit := fs.Float64("rate-limit", 0, "--rate-limit of worker run")
	logLevel := fs.String("log-level", "info", "log level (logs go to stderr, JSON, sampled as worker run's)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the drain (go → stop) here")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the process here at stop")
	var lim retry.LimiterConfig
	fs.IntVar(&lim.Burst, "x-rate-burst", 0, "experiment: LimiterConfig.Burst (worker run: --rate-burst)")
	fs.Float64Var(&lim.Decrease, "x-limiter-decrease", 0, "experiment: LimiterConfig.Decrease")
	fs.Float64Var(&lim.Increase, "x-limiter-increase", 0, "experiment: LimiterConfig.Increase")
	nakInitial := fs.Duration("x-nak-initial", 0, "experiment: retry.Policy.NakInitial (first redelivery delay)")
	var gate worker.GateConfig
	fs.DurationVar(&gate.BreakerOpen, "x-breaker-open", 0, "experiment: GateConfig.BreakerOpen (first wait before a half-open probe)")
	fs.DurationVar(&gate.BreakerMaxOpen, "x-breaker-max-open", 0, "experiment: GateConfig.BreakerMaxOpen (longest wait between probes)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runWorkerChild(workerArgs{
		peer: *peer, natsURL: *natsURL, endpoint: *endpoint, concurrency: *concurrency, ackWait: *ackWait,
		rateLimit: *rateLimit, logLevel: *logLevel, cpuProfile: *cpuProfile, memProfile: *memProfile, limiter: lim, nakInitial: *nakInitial, gate: gate,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

type workerArgs struct {
	peer, natsURL, endpoint string
	concurrency             int
	ackWait                 time.Duration
	rateLimit               float64
	logLevel                string
	cpuProfile, memProfile  string
	// limiter holds experimental limiter settings (zero: worker run's).
	limiter    retry.LimiterConfig
	nakInitial time.Duration
	gate       worker.GateConfig // experimental breaker timings (zero: defaults)
}

// runner is a wired worker: Run blocks until ctx ends and it has drained.
type runner interface {
	Run(ctx context.Context) error
	Close()
}

func runWorkerChild(a workerArgs) error {
	log, err := newLogger(os.Stderr, a.logLevel)
	if err != nil {
		return err
	}
	setupCtx, cancelSetup := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelSetup()
	var (
		r   runner
		obs *timings
	)
	switch a.peer {
	case "pool":
		obs = newTimings()
		r, err = wirePool(setupCtx, a, log, obs)
	case "naive":
		r, err = naive.New(setupCtx, naive.Config{
			NATSURL: a.natsURL, Queue: queueConfig(a.natsURL, a.ackWait).WithDefaults(), Endpoint: a.endpoint,
			AK: benchAK, SK: benchSK, ProjectID: benchProjectID, Concurrency: a.concurrency, Logger: log,
		})
	default:
		err = fmt.Errorf("peer %q: want pool or naive", a.peer)
	}
	if err != nil {
		return err
	}
	defer r.Close()

	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if !in.Scan() || strings.TrimSpace(in.Text()) != "go" {
		return nil // the orchestrator gave up on us
	}
	if a.cpuProfile != "" {
		f, err := os.Create(a.cpuProfile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	fmt.Printf("started %d\n", cpuMicros())
	if obs != nil {
		obs.start()
		defer obs.stop()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := make(chan struct{})
	go func() {
		for in.Scan() && strings.TrimSpace(in.Text()) != "stop" {
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case err := <-done:
		return fmt.Errorf("run ended before stop: %w", err)
	}
	fmt.Printf("stopped %d\n", cpuMicros())
	if obs != nil {
		obs.stop()
		if data, err := json.Marshal(obs.summary()); err == nil {
			fmt.Printf("timings %s\n", data)
		}
	}
	if a.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	cancel()
	err = <-done
	if a.memProfile != "" {
		if perr := writeProfile("allocs", a.memProfile); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

func writeProfile(name, path string) error {
	f, err := os.Create(path) //nolint:gosec // the path the orchestrator gave
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// wirePool wires the pool as `worker run` does (cmd/worker/run.go open)
// with its defaults: the real SDK client sized to the concurrency, result
// events, the max-deliveries sweep, the fleet-wide pause, the Prometheus
// observer, the adaptive limiter always present and, with a rate limit,
// fleet tokens from NATS KV. Not wired: the ops HTTP server and the lag
// poller (no per-request cost).
func wirePool(ctx context.Context, a workerArgs, log *zap.Logger, obs *timings) (_ runner, err error) {
	classifier, err := retry.NewClassifier()
	if err != nil {
		return nil, err
	}
	api, err := codearts.NewClient(codearts.Config{
		Region: "cn-north-4", Endpoint: a.endpoint, ProjectID: benchProjectID,
		Credentials: codearts.Credentials{AK: benchAK, SK: benchSK, ProjectID: benchProjectID},
		Timeout:     runAPITimeout, MaxConns: a.concurrency, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	qcfg := queueConfig(a.natsURL, a.ackWait)
	qcfg.Logger = log
	conn, err := queue.Connect(ctx, qcfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = conn.Close(time.Second)
		}
	}()
	if err := conn.Ensure(ctx); err != nil {
		return nil, err
	}
	cons, err := conn.Consumer(ctx)
	if err != nil {
		return nil, err
	}
	adv, err := conn.Advisories(ctx)
	if err != nil {
		return nil, err
	}
	metrics, err := ops.NewMetrics(ops.NewRegistry(buildinfo.Get("bench")))
	if err != nil {
		return nil, err
	}
	lc := retry.LimiterConfig{Rate: a.rateLimit, Burst: a.limiter.Burst, Decrease: a.limiter.Decrease, Increase: a.limiter.Increase}
	if a.rateLimit > 0 {
		if lc.Tokens, err = conn.FleetTokens(ctx, a.rateLimit); err != nil {
			return nil, err
		}
	}
	limiter, err := retry.NewLimiter(lc)
	if err != nil {
		return nil, err
	}
	obs.limiter = limiter
	qcfg = conn.Config()
	pool, err := worker.New(worker.Config{
		Concurrency: a.concurrency, MaxDeliver: qcfg.MaxDeliver, AckWait: qcfg.AckWait,
		TriesPerDelivery: runTries, DrainTimeout: runDrainTimeout,
		Backoff: retry.Policy{Initial: retry.DefaultInitial, Max: retry.DefaultMax, NakInitial: a.nakInitial},
		Decode:  worker.DecodeOptions{MaxBytes: runMaxBodyBytes, ValidRegion: api.AllowedRegion},
		Gate: worker.GateConfig{ForbiddenRun: 20, ForbiddenHold: 30 * time.Second,
			BreakerOpen: a.gate.BreakerOpen, BreakerMaxOpen: a.gate.BreakerMaxOpen},
		Pauser: conn, Stranded: wire.Stranded{A: adv},
		BeforeProbe: func() {}, // nothing to re-read: the credentials are fixed
		Classifier:  classifier, Limiter: limiter, Results: conn, Name: "bench", Logger: log,
		Observer: worker.Observers{metrics, obs},
	}, &countingSource{Source: wire.Source{C: cons}, t: obs}, wire.Recoverer(api), conn)
	if err != nil {
		return nil, err
	}
	return &pooled{pool: pool, conn: conn, api: api, log: log}, nil
}

type pooled struct {
	pool *worker.Pool
	conn *queue.Conn
	api  *codearts.Client
	log  *zap.Logger
}

func (p *pooled) Run(ctx context.Context) error { return p.pool.Run(ctx) }

func (p *pooled) Close() {
	_ = p.conn.Close(5 * time.Second)
	_ = p.api.Close()
	_ = p.log.Sync()
}

// newLogger is `worker run`'s logger (cmd/worker/logging.go): JSON, sampled
// per message to the first 20 lines a second, then 1 in 100.
func newLogger(w io.Writer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.Lock(zapcore.AddSync(w)), lvl)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 20, 100)
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(w))), nil
}

// cpuMicros is this process's CPU time so far (user + system), in µs.
func cpuMicros() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvMicros(ru.Utime) + tvMicros(ru.Stime)
}

func tvMicros(tv syscall.Timeval) int64 { return int64(tv.Sec)*1e6 + int64(tv.Usec) } //nolint:unconvert // Timeval fields differ by platform
