package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapio"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ui"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// runOptions are the flags of `worker run` (and the shared part of demo).
type runOptions struct {
	configFile    string
	nats          queue.Config
	pool          worker.Config
	api           codearts.Config
	classify      []string
	backoff       retry.Policy
	rateLimit     float64
	rateBurst     int
	rateScope     string
	classifier    *retry.Classifier // from classify, by validate
	logFormat     string
	logLevel      string
	httpAddr      string
	ui            bool   // the status page on uiAddr
	uiAddr        string // the status page's own listener
	uiActions     bool   // its replay action, with the token of uiTokenFile
	uiTokenFile   string
	allowedHosts  []string
	allowInsecure bool

	fs *pflag.FlagSet // the flags, for the startup log line
}

func defaultRunOptions() runOptions {
	return runOptions{
		nats: queue.Config{
			URL: queue.DefaultURL, Stream: queue.DefaultStream, Subject: queue.DefaultSubject,
			Consumer: queue.DefaultConsumer, DLQStream: queue.DefaultDLQStream, DLQSubject: queue.DefaultDLQSubject,
			DLQMaxAge: 14 * 24 * time.Hour, Replicas: 1, DuplicateWindow: 2 * time.Minute,
			// 3s: a crashed worker's requests come back within ~3s
			// (docs/performance.md); live ones are kept by InProgress every
			// second.
			AckWait: 3 * time.Second, MaxDeliver: 5, MaxAckPending: 1000, FetchWait: 5 * time.Second,
		},
		pool: worker.Config{
			Concurrency: 32, TriesPerDelivery: 3, DrainTimeout: 20 * time.Second,
			Decode: worker.DecodeOptions{MaxBytes: 64 << 10},
		},
		api:       codearts.Config{Region: "cn-north-4", Timeout: 10 * time.Second},
		backoff:   retry.Policy{Initial: retry.DefaultInitial, Max: retry.DefaultMax},
		logFormat: "json",
		logLevel:  "info",
		httpAddr:  ":8080",
		ui:        true,
		uiAddr:    "127.0.0.1:8081",
	}
}

// addFlags registers every run flag on fs. Each also reads RECOVER_<NAME>.
func (o *runOptions) addFlags(fs *pflag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.configFile, "config", "", "YAML file of flag values (keys are flag names); flags and environment win")

	n := &o.nats
	addNATSFlags(fs, n)
	fs.DurationVar(&n.DLQMaxAge, "dlq-max-age", n.DLQMaxAge, "how long dead letters are kept")
	fs.StringVar(&n.ResultStream, "result-stream", queue.DefaultResultStream, "stream of result events")
	fs.StringVar(&n.ResultSubject, "result-subject", queue.DefaultResultSubject, `subject of result events, one per finished request ("-" = off)`)
	fs.DurationVar(&n.ResultMaxAge, "result-max-age", 7*24*time.Hour, "how long result events are kept")
	fs.DurationVar(&n.DuplicateWindow, "duplicate-window", n.DuplicateWindow, "request stream's Nats-Msg-Id window: repeats of an id within it are dropped (enqueue and dlq replay reruns are safe within it)")
	fs.IntVar(&n.Replicas, "replicas", n.Replicas, "replicas of the streams the worker creates (3 on a cluster)")
	fs.DurationVar(&n.AckWait, "ack-wait", n.AckWait, "consumer AckWait: how soon a crashed worker's requests come back (heartbeats keep live ones)")
	fs.IntVar(&n.MaxDeliver, "max-deliver", n.MaxDeliver, "deliveries of one request before it is dead-lettered retries_exhausted")
	fs.IntVar(&n.MaxAckPending, "max-ack-pending", n.MaxAckPending, "messages the whole fleet may hold unacknowledged")
	fs.BoolVar(&n.NoCreate, "no-create", false, "do not create or update streams and consumer; they must exist")
	fs.BoolVar(&n.UpdateStreams, "update-streams", false, "change existing streams' settings (replicas, limits, duplicate window, discard) to the worker's; without it they are kept and each difference is logged")

	p := &o.pool
	fs.IntVar(&p.Concurrency, "concurrency", p.Concurrency, "requests worked on at once")
	fs.IntVar(&p.TriesPerDelivery, "tries-per-delivery", p.TriesPerDelivery, "API calls per delivery for transient failures before a delayed redelivery")
	fs.DurationVar(&p.DrainTimeout, "drain-timeout", p.DrainTimeout, "on shutdown, how long in-flight requests may finish before they are handed back")
	fs.IntVar(&p.Decode.MaxBytes, "max-body-bytes", p.Decode.MaxBytes, "largest accepted request body")
	fs.DurationVar(&o.backoff.Initial, "backoff-initial", o.backoff.Initial, "first retry wait")
	fs.DurationVar(&o.backoff.Max, "backoff-max", o.backoff.Max, "longest retry wait")
	fs.IntVar(&p.Gate.ForbiddenRun, "forbidden-run", 20, "403s on distinct jobs in a row (no success between) that pause consumption like a 401 (capped at --concurrency)")
	fs.DurationVar(&p.Gate.ForbiddenHold, "forbidden-hold", 30*time.Second, "how long a 403 waits for a success elsewhere before it is dead-lettered (2s once nothing else of its region is in flight and nothing is left to deliver)")
	fs.BoolVar(&p.Verify, "verify", false, "after a recover answered success, read the job back (ShowDisable): still disabled is retried, then dead-lettered not_recovered; one more API call per request")
	fs.BoolVar(&p.SkipEnabled, "skip-enabled", false, "read the job's state first: a job not disabled ends already_enabled without a recover; one more API call per disabled job")
	fs.StringArrayVar(&o.classify, "classify", nil, `extra classification rule, repeatable: "STATUS[:ERROR_CODE]=CLASS" or "*:ERROR_CODE=CLASS" (classes: client_error, throttled, transient, unauthorized, configuration, forbidden)`)

	a := &o.api
	fs.StringVar(&a.Region, "region", a.Region, "default API region")
	fs.StringSliceVar(&a.Regions, "regions", nil, "regions a request may name (default: only --region)")
	fs.StringVar(&a.Endpoint, "endpoint", "", "API endpoint overriding the regional one (e.g. a simulator); http:// only on this machine unless --allow-insecure")
	fs.BoolVar(&o.allowInsecure, "allow-insecure", false, allowInsecureHelp)
	fs.StringVar(&a.ProjectID, "project-id", "", "project id (default: HUAWEICLOUD_SDK_PROJECT_ID)")
	fs.DurationVar(&a.Timeout, "api-timeout", a.Timeout, "timeout of one API call")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "API requests per second, 0 = no limit")
	fs.IntVar(&o.rateBurst, "rate-burst", 0, "API request burst (default: rate-limit / 10, at least 1)")
	fs.StringVar(&o.rateScope, "rate-limit-scope", "fleet", "fleet: --rate-limit is shared by all replicas through NATS KV; process: per replica")

	fs.StringVar(&o.logFormat, "log-format", o.logFormat, "json or console")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
	fs.StringVar(&o.httpAddr, "http-addr", o.httpAddr, "address of /healthz, /readyz and /metrics (empty = off)")
	fs.BoolVar(&o.ui, "ui", o.ui, "serve the live status page on --ui-addr (read-only unless --ui-actions and --ui-token-file)")
	fs.StringVar(&o.uiAddr, "ui-addr", o.uiAddr, "address of the status page and its JSON API (loopback by default: kubectl port-forward reaches it; empty = off)")
	fs.BoolVar(&o.uiActions, "ui-actions", o.uiActions, "let the status page replay dead letters, for callers presenting the token of --ui-token-file")
	fs.StringVar(&o.uiTokenFile, "ui-token-file", "", "file holding the bearer token the status page's actions require (without it the page is read-only)")
	fs.StringSliceVar(&o.allowedHosts, "allowed-hosts", nil, "host names the HTTP listeners answer besides IP addresses and localhost (e.g. recover-worker.ops.svc; *.example.com); others get 421")
}

func newRunCmd() *cobra.Command {
	o := defaultRunOptions()
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the worker: drain recover requests until stopped",
		Long: `Run the worker. It connects to NATS, creates or updates the streams and the
consumer (unless --no-create), and works on requests until SIGTERM/SIGINT; it
then stops fetching, lets in-flight requests finish within --drain-timeout and
hands the rest back.

Every flag also reads RECOVER_<FLAG_NAME> (e.g. RECOVER_CONCURRENCY); --nats-url
also reads NATS_URL; --config FILE reads YAML. Credentials come from the SDK's
chain: HUAWEICLOUD_SDK_AK/SK/PROJECT_ID/SECURITY_TOKEN (or CLOUD_SDK_AK/SK),
the profile file, ECS metadata, CCE pod identity.`,
		Example: `  worker run --nats-url nats://nats:4222 --region cn-north-4 --concurrency 64
  RECOVER_RATE_LIMIT=50 worker run --config /etc/recover/worker.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := layerConfig(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			if err := applyNATSContext(cmd.Flags(), &o.nats, os.LookupEnv); err != nil {
				return err
			}
			m, err := o.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil && cmd.Context().Err() != nil {
				// Stopped before it held anything (e.g. SIGTERM while NATS
				// was unreachable): a clean shutdown.
				return nil
			}
			if err != nil {
				return err
			}
			defer m.Close()
			return m.Run(cmd.Context())
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// service is the wired worker (wtf's Main: open, Run, Close).
type service struct {
	log  *zap.Logger
	conn *queue.Conn
	api  *codearts.Client
	pool *wire.Pool

	ops     *ops.Server   // nil with --http-addr ""
	tracing *tracing      // nil when OTEL_* asks for no tracing
	ui      *ui.Server    // nil with --ui=false or --ui-addr ""
	uiLn    *ops.Listener // the page's listener
	metrics *ops.Metrics
	lag     *ops.LagPoller
	tally   ops.DrainTally
	wired   atomic.Bool // startup done: NATS connected, consumer bound, pool built
	// starting is the connection while the start-up waits for JetStream,
	// for the readiness check to say why it waits.
	starting atomic.Pointer[queue.Conn]
}

// validate checks every option and names the offending flag.
func (o *runOptions) validate() error {
	var errs []error
	// The request stream refuses what the decoder would refuse anyway.
	o.nats.MaxBodyBytes = o.pool.Decode.MaxBytes
	if err := o.nats.Validate(); err != nil {
		errs = append(errs, err)
	}
	o.pool.MaxDeliver = o.nats.MaxDeliver
	o.pool.AckWait = o.nats.AckWait
	o.pool.Backoff = o.backoff
	if err := o.pool.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.api.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.rateLimit < 0 {
		errs = append(errs, fmt.Errorf("rate-limit: %g is negative", o.rateLimit))
	}
	if o.rateBurst < 0 {
		errs = append(errs, fmt.Errorf("rate-burst: %d is negative", o.rateBurst))
	}
	if o.pool.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency: %d is below 1", o.pool.Concurrency))
	}
	if rules, err := retry.ParseRules(o.classify); err != nil {
		errs = append(errs, fmt.Errorf("classify: %w", err))
	} else if o.classifier, err = retry.NewClassifier(rules...); err != nil {
		errs = append(errs, fmt.Errorf("classify: %w", err))
	}
	if err := plaintextNATS(o.nats, o.allowInsecure); err != nil {
		errs = append(errs, err)
	}
	if err := plaintextEndpoint(o.api.Endpoint, o.allowInsecure); err != nil {
		errs = append(errs, err)
	}
	if _, err := ops.NewHosts(o.allowedHosts); err != nil {
		errs = append(errs, err)
	}
	if o.uiTokenFile != "" {
		if _, err := readUIToken(o.uiTokenFile); err != nil {
			errs = append(errs, err)
		}
	}
	if o.rateScope != "fleet" && o.rateScope != "process" {
		errs = append(errs, fmt.Errorf("rate-limit-scope: %q is not fleet or process", o.rateScope))
	}
	return joinOneLine(errs)
}

func (o *runOptions) open(ctx context.Context, stderr io.Writer) (_ *service, err error) {
	log, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	// The ops server comes up first, so /healthz answers while NATS is
	// still unreachable (a restart would not help) and /readyz says why.
	s := &service{log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// A bad OTEL_* value stops the start, like a bad flag.
	if s.tracing, err = startTracing(ctx, stderr, func(err error) { log.Warn("tracing", zap.Error(err)) }); err != nil {
		return nil, err
	}
	if err := s.startOps(ctx, o); err != nil {
		return nil, err
	}
	log.Info("worker starting", o.startupFields()...)
	log.Info("tracing", s.tracing.logFields()...)
	if o.api.Credentials.AK == "" {
		creds, err := codearts.LoadCredentials()
		if err != nil {
			// The SDK's chain error spans lines and providers; keep the
			// one-line error actionable and the details in the log.
			log.Debug("credential providers", zap.Error(err))
			return nil, errors.New("credentials: none found; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK " +
				"(or CLOUD_SDK_AK/CLOUD_SDK_SK, the SDK profile file, CCE pod identity or ECS metadata)")
		}
		o.api.Credentials = creds
	}
	if o.api.ProjectID == "" {
		o.api.ProjectID = o.api.Credentials.ProjectID
	}
	o.api.MaxConns = o.pool.Concurrency
	o.api.Logger = log
	api, err := codearts.NewClient(o.api)
	if err != nil {
		return nil, err
	}
	o.nats.Logger = log
	conn, err := queue.Connect(ctx, o.nats)
	if err != nil {
		return nil, err
	}
	s.conn, s.api = conn, api
	// JetStream may not answer yet (leaders being elected in a rolling
	// upgrade of NATS, a cluster without quorum, streams not provisioned
	// yet for --no-create): wait, not ready, until it does; only an error
	// that cannot heal (credentials, permissions, a stream or setting the
	// server refuses) stops the start.
	s.starting.Store(conn)
	pc := o.pool
	pc.Classifier = o.classifier
	pc.BeforeProbe = func() {
		// Credentials may have been rotated (env, profile file, pod
		// identity): re-read them before each probe.
		if err := api.ReloadCredentials(); err != nil {
			log.Warn("re-reading credentials failed", zap.Error(err))
		}
	}
	pc.Logger = log
	pc.Tracer, pc.Propagator = s.tracing.provider(), s.tracing.propagator()
	pc.Observer = worker.Observers{s.metrics, &s.tally}
	// Always a limiter: even without --rate-limit, throttle answers lower
	// the rate. With the fleet scope (the default) the rate is learned and
	// shared by every replica through NATS KV (queue.Fleet).
	po := wire.PoolOptions{Rate: o.rateLimit, Burst: o.rateBurst, ProcessScope: o.rateScope == "process"}
	var pool *wire.Pool
	err = conn.Await(ctx, "set up the streams and consumers", func(ctx context.Context) (err error) {
		if err := conn.Ensure(ctx); err != nil {
			return err
		}
		pool, err = wire.NewPool(ctx, conn, api, pc, po)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.pool = pool
	limiter, cons := pool.Limiter, pool.Consumer
	s.wire(cons)
	s.attachUI(conn, o, limiter)
	log.Info("worker started", zap.Stringer("credentials", o.api.Credentials), zap.String("project_id", o.api.ProjectID))
	return s, nil
}

// Run works until ctx ends, then drains.
func (s *service) Run(ctx context.Context) error {
	stopTally := context.AfterFunc(ctx, s.tally.Begin)
	defer stopTally()
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		s.lag.Run(ctx)
	}()
	err := s.pool.Run(ctx)
	<-lagDone
	drained, handedBack := s.tally.Counts()
	s.log.Info("worker stopped", zap.Int64("drained", drained), zap.Int64("handed_back", handedBack))
	return err
}

// Close releases the NATS connection (flushing acks and naks).
func (s *service) Close() {
	if s.uiLn != nil {
		_ = s.uiLn.Close()
	}
	if s.ui != nil {
		s.ui.Close() // a replay from the page needs the connection
	}
	if s.conn != nil {
		if err := s.conn.Close(5 * time.Second); err != nil {
			s.log.Warn("closing nats", zap.Error(err))
		}
	}
	if s.api != nil {
		_ = s.api.Close() // idle keep-alive connections
	}
	if err := s.tracing.shutdown(); err != nil {
		s.log.Warn("tracing", zap.Error(err))
	}
	// Last, so /metrics and /readyz answer until the very end.
	if s.ops != nil {
		if err := s.ops.Close(); err != nil {
			s.log.Warn("closing the ops http server", zap.Error(err))
		}
	}
	_ = s.log.Sync()
}

// startOps builds the metrics and, unless --http-addr is "", starts the ops
// HTTP server with a readiness check that fails until wire has run; and,
// unless --ui=false or --ui-addr is "", the status page on its own listener
// (it says "starting" until attachUI).
func (s *service) startOps(ctx context.Context, o *runOptions) error {
	reg := ops.NewRegistry(buildinfo.Get(buildVersion()))
	m, err := ops.NewMetrics(reg)
	if err != nil {
		return err
	}
	s.metrics = m
	hosts, err := ops.NewHosts(o.allowedHosts)
	if err != nil {
		return err
	}
	if o.httpAddr != "" {
		srv := ops.New(ops.Config{Addr: o.httpAddr, Gatherer: reg, Logger: s.log, Hosts: hosts})
		srv.AddCheck("startup", func() error {
			if s.wired.Load() {
				return nil
			}
			if c := s.starting.Load(); c != nil {
				if err := c.Waiting(); err != nil {
					return fmt.Errorf("waiting for JetStream: %w", err)
				}
			}
			return errors.New("connecting to NATS and binding the consumer")
		})
		if err := srv.Start(ctx); err != nil {
			return err
		}
		s.ops = srv
	}
	if !o.ui || o.uiAddr == "" {
		return nil
	}
	cfg := ui.Config{Actions: o.uiActions, Totals: s.metrics.Totals, Logger: s.log}
	if s.ops != nil {
		cfg.Ready = s.ops.Ready
	}
	if o.uiTokenFile != "" {
		if cfg.Token, err = readUIToken(o.uiTokenFile); err != nil {
			return err
		}
	}
	if o.uiActions && cfg.Token == "" {
		s.log.Warn("--ui-actions without --ui-token-file: the status page stays read-only")
	}
	s.ui = ui.New(cfg)
	s.uiLn, err = ops.Listen(ctx, ops.ListenConfig{Addr: o.uiAddr, Flag: "ui-addr", Handler: s.ui, Hosts: hosts, Logger: s.log})
	if errors.Is(err, syscall.EADDRINUSE) && (o.fs == nil || !o.fs.Changed("ui-addr")) {
		// The default address, taken (a second worker on this machine):
		// the page is a convenience, the worker's work is not.
		s.log.Warn("status page off: its default address is taken; set --ui-addr", zap.String("ui_addr", o.uiAddr), zap.Error(err))
		s.ui.Close()
		s.ui = nil
		return nil
	}
	return err
}

// readUIToken reads the status page's bearer token from path
// (--ui-token-file): the file's content without surrounding white space,
// at least 16 characters.
func readUIToken(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the file (--ui-token-file)
	if err != nil {
		return "", fmt.Errorf("ui-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("ui-token-file: %s holds %d characters; a token needs at least 16 (e.g. openssl rand -hex 32)", path, len(tok))
	}
	return tok, nil
}

// attachUI gives the status page the streams and this process's state.
func (s *service) attachUI(conn *queue.Conn, o *runOptions, limiter *retry.Limiter) {
	if s.ui == nil {
		return
	}
	s.ui.Attach(uiBackend(conn, liveState(s.pool.Pool, limiter, o.pool.Concurrency, o.rateLimit, o.api.Region), s.log))
}

// uiBackend is what the status page reads and replays through (run and
// demo): the streams via internal/admin, this process's state via live.
func uiBackend(conn *queue.Conn, live func() ui.Live, log *zap.Logger) ui.Backend {
	return ui.Backend{
		Streams: &admin.Streams{
			Conn:      conn,
			Snapshots: admin.SnapshotConfig{ResultStream: conn.Config().ResultStream},
			Problems:  &zapio.Writer{Log: log.Named("replay"), Level: zap.WarnLevel},
		},
		Live:      live,
		Campaigns: admin.NewCampaignTracker(conn, admin.TrackerConfig{}),
	}
}

// liveState reads what the status page shows of this process.
func liveState(pool *worker.Pool, limiter *retry.Limiter, concurrency int, rateLimit float64, region string) func() ui.Live {
	return func() ui.Live {
		st := pool.State()
		l := ui.Live{
			InFlight: pool.InFlight(), Concurrency: concurrency, RateLimit: limiter.Rate(), RateLimitMax: rateLimit,
			Paused: st.Paused, PauseReason: st.PauseReason, Breakers: map[string]retry.BreakerState{}, Draining: pool.Draining(),
		}
		if until := limiter.PausedUntil(); time.Now().Before(until) {
			l.ThrottledUntil = until
		}
		for r, rs := range st.Regions {
			if r == "" {
				r = region
			}
			l.Breakers[r] = rs.Breaker
		}
		return l
	}
}

// wire feeds the metrics and readiness from the running pieces.
func (s *service) wire(cons *queue.Consumer) {
	pool := s.pool
	s.metrics.SetState(ops.State{InFlight: pool.InFlight, Regions: regionGauges(pool.Pool, pool.Limiters.Region, s.api.Regions())})
	s.lag = &ops.LagPoller{Consumer: cons, Metrics: s.metrics, Logger: s.log}
	if s.ops != nil {
		s.ops.AddCheck("nats", func() error {
			if !s.conn.Connected() {
				return errors.New("not connected")
			}
			return nil
		})
		s.ops.AddCheck("consumer", s.lag.Bound)
		s.ops.AddCheck("draining", func() error {
			if pool.Draining() {
				return errors.New("shutting down")
			}
			return nil
		})
		s.ops.AddCheck("paused", func() error {
			if st := pool.State(); st.Paused {
				return fmt.Errorf("credentials rejected: %s", st.PauseReason)
			}
			return nil
		})
		s.ops.AddCheck("breaker", func() error {
			if pool.State().Breaker() == retry.BreakerOpen {
				return errors.New("the API circuit breaker is open")
			}
			return nil
		})
	}
	s.wired.Store(true)
}

// regionGauges reads each allowed region's flow control for the gauges:
// its breaker and pause from the pool (which keys the default region "")
// and its rate and Retry-After pause from its limiter.
func regionGauges(pool *worker.Pool, limiter func(region string) *retry.Limiter, allowed []string) func() []ops.RegionState {
	regions := append(allowed[:1:1], slices.Sorted(slices.Values(allowed[1:]))...)
	return func() []ops.RegionState {
		st, now := pool.State(), time.Now()
		out := make([]ops.RegionState, 0, len(regions))
		for i, name := range regions {
			key := name
			if i == 0 {
				key = ""
			}
			rs, lim := st.Regions[key], limiter(name)
			g := ops.RegionState{Region: name, Breaker: rs.Breaker, RateLimit: lim.Rate()}
			switch {
			case rs.Paused:
				g.Pause = ops.PauseCredentials
			case now.Before(lim.PausedUntil()):
				g.Pause = ops.PauseThrottle
			}
			out = append(out, g)
		}
		return out
	}
}

// joinOneLine joins errors into one line, each message once (the NATS and pool
// configs both check ack-wait, for instance).
func joinOneLine(errs []error) error {
	var msgs []string
	seen := map[string]bool{}
	for _, err := range errs {
		for _, m := range strings.Split(err.Error(), "\n") {
			if m = strings.TrimSpace(m); m != "" && !seen[m] {
				seen[m] = true
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
