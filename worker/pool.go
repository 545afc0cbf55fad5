package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Delivery is one delivery of a request message, with the verbs that end
// or extend it. queue.Message implements it.
type Delivery interface {
	Body() []byte
	Header() map[string][]string
	Subject() string
	StreamSeq() uint64
	NumDelivered() uint64
	Timestamp() time.Time
	// Ack acknowledges and waits for the server's confirmation.
	Ack(ctx context.Context) error
	// Nak hands the message back for redelivery after delay.
	Nak(delay time.Duration) error
	// InProgress extends the message's AckWait.
	InProgress() error
}

// Source delivers request messages.
type Source interface {
	// Fetch asks for at most n messages and calls deliver for each as it
	// arrives; it returns when the pull is over (complete, expired or ctx
	// done). deliver must not block for long.
	Fetch(ctx context.Context, n int, deliver func(Delivery)) error
}

// Recoverer calls the recover API for one request and returns the API's
// request id.
type Recoverer interface {
	Recover(ctx context.Context, req Request) (requestID string, err error)
}

// RecoverFunc adapts a function to Recoverer.
type RecoverFunc func(ctx context.Context, req Request) (string, error)

// Recover calls f.
func (f RecoverFunc) Recover(ctx context.Context, req Request) (string, error) { return f(ctx, req) }

// DeadLetterer stores a dead-letter record and returns once it is durably
// acknowledged; msgID makes a repeat a no-op.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, msgID string, record []byte) error
}

// Resulter stores a result event and returns once it is durably
// acknowledged; msgID makes a repeat a no-op. queue.Conn implements it.
type Resulter interface {
	Result(ctx context.Context, msgID string, record []byte) error
}

// Limiter paces API calls per region ("" = the default region): quotas are
// per regional endpoint, so one region's throttling never slows another.
// internal/wire's Limiters (a retry.Limiter per region) implements it.
type Limiter interface {
	Wait(ctx context.Context, region string) error
	Throttled(region string, retryAfter time.Duration)
	Succeeded(region string)
}

// Config configures a Pool. Zero values mean the documented defaults.
type Config struct {
	// Concurrency is the number of requests worked on at once (and the most
	// messages held from the stream). Default 32.
	Concurrency int
	// MaxDeliver must equal the consumer's MaxDeliver: the delivery with
	// this number dead-letters the request itself when its tries run out,
	// instead of leaving it to die at the server's limit. Default 5.
	MaxDeliver int
	// TriesPerDelivery is how many API calls one delivery makes for
	// transient failures before handing the message back with a delay.
	// The attempt budget of a request is MaxDeliver × TriesPerDelivery.
	// Throttles do not count. Default 3.
	TriesPerDelivery int
	// Backoff is the wait between tries within a delivery.
	// Zero fields take retry's defaults.
	Backoff retry.Policy
	// AckWait must equal the consumer's AckWait; InProgress is sent every
	// AckWait/3 for each message being worked on. Default 30s.
	AckWait time.Duration
	// DrainTimeout bounds how long in-flight requests may take to finish
	// after shutdown begins; the rest are handed back. Default 20s.
	DrainTimeout time.Duration
	// MaxBatch caps one pull request. Default Concurrency.
	MaxBatch int
	// Decode bounds accepted bodies and says which regions are allowed.
	Decode DecodeOptions
	// Classifier decides what an API answer means. nil = retry defaults.
	Classifier *retry.Classifier
	// Limiter paces API calls, per region. nil = no limit.
	Limiter Limiter
	// DefaultRegion is the name of the region requests without one go to:
	// a request naming it shares the default region's breaker, pause and
	// rate ("" region). Empty = none named so.
	DefaultRegion string
	// Gate tunes the circuit breaker and the credential pause.
	Gate GateConfig
	// Pauser pauses the consumer for the whole fleet on a credential
	// failure. nil = this process only.
	Pauser Pauser
	// Backlog says whether the consumer has requests left to deliver, asked
	// before a lone 403 is judged (GateConfig.ForbiddenIdle). nil = not
	// asked: the region idle here is enough.
	Backlog Backlog
	// Share shares each region's open breaker and pause with the fleet
	// (Pool.Follow brings the fleet's back). nil = this process decides alone.
	Share Share
	// BeforeProbe runs before each probe while paused for credentials
	// (e.g. re-read rotated credentials). nil = nothing.
	BeforeProbe func()
	// Stranded yields requests that reached MaxDeliver anyway (from the
	// MAX_DELIVERIES advisory); Run dead-letters them max_deliveries.
	// nil = no catch-all.
	Stranded StrandedSource
	// Requeue publishes a request handed back (shutdown, drain timeout)
	// again at the back of the stream with the tries it spent, so that
	// hand-backs cost no delivery. nil = hand-backs are naks, and each
	// counts as a delivery toward MaxDeliver.
	Requeue Requeuer
	// Claims records each request's one terminal outcome before any record
	// of it is published (claim.go): a redelivery, a requeued copy or the
	// max-deliveries sweep that finds one stores its records instead of
	// making another outcome. nil = no claims: a failed ack or result
	// publish can then end a request twice.
	Claims Claims
	// Results receives one result event per request that reached a
	// terminal state, before its ack. nil = no result events.
	Results Resulter
	// Verify reads the job's state after a recover answered success: a
	// job still disabled is retried like a transient failure and, once
	// the budget is spent, dead-lettered not_recovered; a job read enabled
	// is recovered with verified set in its result event. One more API
	// call per request. Needs States.
	Verify bool
	// SkipEnabled reads the job's state before recovering it: a job not
	// disabled ends with outcome already_enabled and no recover call.
	// Needs States.
	SkipEnabled bool
	// States reads jobs' states for Verify and SkipEnabled.
	States StateReader
	// Consumer is the durable consumer's name, on delivery spans as
	// messaging.consumer.group.name. "" = not on spans. wire.NewPool sets
	// it from the bound consumer.
	Consumer string
	// Name is this worker's host/pod name in dead letters. Default: the
	// POD_NAME environment variable, else the host name.
	Name string
	// Logger receives one line per decision. nil = no logs.
	Logger *zap.Logger
	// Observer is told every outcome (metrics, demo progress). nil = none.
	Observer Observer
	// Tracer makes a span per delivery (kind consumer) with a child span
	// per API call (kind client), in the request's trace (see
	// RequestTrace). nil = no spans; the trace id of a producer's
	// traceparent is still written to dead letters, result events and log
	// lines.
	Tracer trace.TracerProvider
	// Propagator reads a producer's trace context from a request's headers
	// when Tracer is set (OTEL_PROPAGATORS; an empty composite reads
	// nothing, so every request is traced under its derived trace). nil =
	// W3C trace context.
	Propagator propagation.TextMapPropagator
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 32
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.TriesPerDelivery == 0 {
		c.TriesPerDelivery = 3
	}
	c.Backoff = c.Backoff.WithDefaults()
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = c.Concurrency
	}
	if c.Name == "" {
		c.Name = os.Getenv("POD_NAME")
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Concurrency < 1 || c.Concurrency > 4096:
		return fmt.Errorf("concurrency: %d is not in 1..4096", c.Concurrency)
	case c.MaxDeliver < 1:
		return fmt.Errorf("max-deliver: %d is below 1", c.MaxDeliver)
	case c.TriesPerDelivery < 1:
		return fmt.Errorf("tries-per-delivery: %d is below 1", c.TriesPerDelivery)
	case c.AckWait < time.Second:
		return fmt.Errorf("ack-wait: %s is below 1s", c.AckWait)
	case c.DrainTimeout < 0:
		return fmt.Errorf("drain-timeout: %s is negative", c.DrainTimeout)
	case c.MaxBatch < 1:
		return fmt.Errorf("max-batch: %d is below 1", c.MaxBatch)
	}
	switch g := c.Gate; {
	case g.ForbiddenRun < 0:
		return fmt.Errorf("forbidden-run: %d is negative", g.ForbiddenRun)
	case g.ForbiddenHold < 0:
		return fmt.Errorf("forbidden-hold: %s is negative", g.ForbiddenHold)
	case g.BreakerRatio < 0 || g.BreakerRatio > 1:
		return fmt.Errorf("breaker-ratio: %g is not in [0, 1]", g.BreakerRatio)
	case g.BreakerWindow < 0 || g.BreakerMinCalls < 0 || g.BreakerMinCalls > max(g.BreakerWindow, 20):
		return fmt.Errorf("breaker-window: window %d and min calls %d do not fit", g.BreakerWindow, g.BreakerMinCalls)
	}
	if err := c.Backoff.Validate(); err != nil {
		return fmt.Errorf("backoff: %w", err)
	}
	return nil
}

// Pool works on requests from a Source with Concurrency goroutines.
type Pool struct {
	cfg   Config
	src   Source
	rec   Recoverer
	dlq   DeadLetterer
	log   *zap.Logger
	obs   Observer
	tr    trace.Tracer  // nil: tracing off
	slot  chan struct{} // one token per message held (Concurrency + lookahead)
	holds chan struct{} // one token per message held at its region's gate without a slot
	calls chan struct{} // one token per API call in flight (Concurrency)
	// minPull is the least a pull asks for while the pool is busy: pulls
	// of one message each cost a round trip per request.
	minPull int

	mu       sync.Mutex
	inflight map[*task]struct{}

	draining   atomic.Bool
	maxDeliver uint64
	gate       *gate
	leaseDrops atomic.Int64
	// epoch anchors the heartbeat instants (task.lastBeat): nanoseconds
	// since it are on the monotonic clock, so a wall-clock step (NTP, a VM
	// resumed) neither drops every lease nor hides a lost one.
	epoch time.Time
}

// mono is the monotonic time since the pool was made, as lastBeat holds it.
func (p *Pool) mono() int64 { return int64(time.Since(p.epoch)) }

// New returns a Pool; it does nothing until Run.
func New(cfg Config, src Source, rec Recoverer, dlq DeadLetterer) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || rec == nil || dlq == nil {
		return nil, errors.New("worker: source, recoverer and dead-letterer are required")
	}
	if (cfg.Verify || cfg.SkipEnabled) && cfg.States == nil {
		return nil, errors.New("worker: verify and skip-enabled need a state reader (Config.States)")
	}
	cfg = cfg.withDefaults()
	if cfg.Verify || cfg.SkipEnabled {
		rec = &verifier{rec: rec, states: cfg.States, lim: cfg.Limiter, verify: cfg.Verify, skip: cfg.SkipEnabled}
	}
	var tr trace.Tracer
	if cfg.Tracer != nil {
		tr = cfg.Tracer.Tracer(tracerName)
	}
	g := newGate(gateConfig(cfg), cfg.Logger, cfg.Pauser, cfg.BeforeProbe, cfg.Share)
	g.backlog = cfg.Backlog
	return &Pool{
		tr:  tr,
		cfg: cfg,
		src: src,
		rec: rec,
		dlq: dlq,
		log: cfg.Logger,
		obs: cfg.Observer,
		// A small lookahead (1/8 of Concurrency) keeps the next requests
		// at hand, heartbeated, so a finished call is followed by the next
		// at once instead of after a pull's round trip (docs/performance.md).
		slot:       make(chan struct{}, cfg.Concurrency+max(1, cfg.Concurrency/8)),
		calls:      make(chan struct{}, cfg.Concurrency),
		holds:      make(chan struct{}, holdMax(cfg.Concurrency)),
		minPull:    min(max(1, cfg.Concurrency/16), cfg.MaxBatch),
		inflight:   make(map[*task]struct{}),
		maxDeliver: uint64(cfg.MaxDeliver), //nolint:gosec // validated >= 1
		gate:       g,
		epoch:      time.Now(),
	}, nil
}

// flowRegion is the region whose flow control (breaker, pause, rate) a
// request goes through: "" for the default region, by name or not.
func (p *Pool) flowRegion(r string) string {
	if r == p.cfg.DefaultRegion {
		return ""
	}
	return r
}

// Draining reports whether shutdown has begun.
func (p *Pool) Draining() bool { return p.draining.Load() }

// holdMax is how many requests may wait at their region's breaker or pause
// without a fetch slot: a region in trouble holds that many before its
// requests take the slots other regions' requests need.
func holdMax(concurrency int) int { return max(64, 4*concurrency) }

// gateConfig caps the 403 run at what the pool can hold at once (slots and
// holds): a longer run could never be seen.
func gateConfig(cfg Config) GateConfig {
	g := cfg.Gate.withDefaults()
	g.ForbiddenRun = min(g.ForbiddenRun, cfg.Concurrency+holdMax(cfg.Concurrency))
	return g
}

// State reports the circuit breakers and the credential pause.
func (p *Pool) State() State { return p.gate.state() }

// LeaseLost counts messages dropped because their lease could not be kept
// (no heartbeat reached the server for longer than AckWait).
func (p *Pool) LeaseLost() int64 { return p.leaseDrops.Load() }

// InFlight is the number of requests being worked on.
func (p *Pool) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}

// Run fetches and works on requests until ctx ends, then drains: it stops
// fetching, lets in-flight requests finish within DrainTimeout (on a
// context that outlives ctx), hands the rest back with a nak, and returns.
// Every message Run received is acked, dead-lettered-then-acked or nak'd
// before Run returns, unless the connection to NATS is gone.
func (p *Pool) Run(ctx context.Context) error {
	// Work outlives ctx by at most DrainTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	// One goroutine per message held; each owns the fetch slot taken for
	// it until it ends or gives the slot up to wait at its region's gate.
	var workers sync.WaitGroup
	var sweeper sync.WaitGroup
	if p.cfg.Stranded != nil {
		sweeper.Go(func() { p.sweep(ctx, p.cfg.Stranded) })
	}

	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		p.heartbeat(workCtx, hbStop)
	}()

	var fetchers sync.WaitGroup
	fetchErrs := newFetchBackoff()
	for {
		// Take one free slot (block), then as many more as are free.
		select {
		case p.slot <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		n := 1
		// While busy, wait until a worthwhile pull can be made.
		for n < p.minPull {
			select {
			case p.slot <- struct{}{}:
				n++
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			p.release(n)
			break
		}
	more:
		for n < p.cfg.MaxBatch {
			select {
			case p.slot <- struct{}{}:
				n++
			default:
				break more
			}
		}
		if err := fetchErrs.wait(ctx); err != nil {
			p.release(n)
			break
		}
		// Breaker open or paused: take nothing new; in-flight requests
		// wait at the gate with their heartbeats.
		allow, err := p.gate.waitOpen(ctx)
		if err != nil {
			p.release(n)
			break
		}
		if allow > 0 && allow < n {
			p.release(n - allow)
			n = allow
		}
		fetchers.Go(func() {
			got := 0
			// The pull runs on workCtx, not ctx: the server keeps a pull
			// request until it expires (FetchWait), so a fetch abandoned at
			// shutdown would let a message arrive at nobody and sit until
			// AckWait, its delivery counted as spent. Listening to the end
			// hands every such message back at once, free (a drain, as
			// Drain does for a subscription).
			err := p.src.Fetch(workCtx, n, func(d Delivery) {
				got++
				if ctx.Err() != nil {
					// Arrived after shutdown began: hand it back at once,
					// free like every other hand-back.
					p.handBack(workCtx, p.newTask(d), 0, "shutdown")
					<-p.slot
					return
				}
				workers.Go(func() { p.safeHandle(ctx, workCtx, d) })
			})
			p.release(n - got)
			if err != nil && ctx.Err() == nil {
				p.log.Warn("fetch failed", zap.Error(err))
				fetchErrs.failed()
				return
			}
			fetchErrs.succeeded()
		})
	}

	// Shutdown: not ready, stop fetching, drain.
	p.draining.Store(true)
	inFlight := p.InFlight()
	p.log.Info("draining", zap.Int("in_flight", inFlight), zap.Duration("drain_timeout", p.cfg.DrainTimeout))
	// The drain timeout counts from here, and the pulls still open end with
	// it at the latest: a Source whose pull waits only for its context (or
	// a pull stuck on a lost connection) must not keep the drain from
	// starting, nor the process from exiting.
	timer := time.AfterFunc(p.cfg.DrainTimeout, cancelWork)
	fetchers.Wait()
	workers.Wait()
	timer.Stop()
	close(hbStop)
	<-hbDone
	sweeper.Wait()
	return nil
}

// safeHandle contains a panic in one request's handling: the request is
// handed back (if it panics on every delivery, the max-deliveries sweep
// dead-letters it) and the process goes on with the others.
func (p *Pool) safeHandle(runCtx, workCtx context.Context, d Delivery) {
	s := &slots{p: p, fetch: true}
	defer s.done()
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic while handling a request; handing it back",
				zap.Uint64("stream_seq", d.StreamSeq()), zap.Uint64("delivery", d.NumDelivered()),
				zap.Any("panic", r), zap.Stack("stack"))
			p.nak(d, p.cfg.Backoff.NakDelay(d.NumDelivered(), nil), "panic")
			p.obs.Outcome(Outcome{Kind: OutcomeHandedBack, Reason: "panic", StreamSeq: d.StreamSeq(), Delivery: d.NumDelivered()})
		}
	}()
	p.handle(runCtx, workCtx, d, s)
}

// slots is what one message's goroutine holds of the pool's bounds: the
// fetch slot taken for it, or instead, while it waits at its region's gate,
// one of holdMax hold tokens. Released by done, whatever happens.
type slots struct {
	p       *Pool
	fetch   bool
	holding bool
}

// hold gives the fetch slot up for a hold token while the request waits at
// its region's breaker or pause, so the pool fetches for other regions; with
// no hold token free it keeps the slot (the pool then fills up and waits).
func (s *slots) hold() {
	if !s.fetch {
		return
	}
	select {
	case s.p.holds <- struct{}{}:
		s.fetch, s.holding = false, true
		<-s.p.slot
	default:
	}
}

// unhold returns the hold token once the request passed the gate.
func (s *slots) unhold() {
	if s.holding {
		s.holding = false
		<-s.p.holds
	}
}

func (s *slots) done() {
	s.unhold()
	if s.fetch {
		s.fetch = false
		<-s.p.slot
	}
}

func (p *Pool) release(n int) {
	for range n {
		<-p.slot
	}
}

// heartbeat sends InProgress for every message being worked on, every
// AckWait/3, so the server never hands a message we still work on to
// another worker.
func (p *Pool) heartbeat(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(p.cfg.AckWait / 3)
	defer t.Stop()
	var batch []*task
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		batch = batch[:0]
		p.mu.Lock()
		for tk := range p.inflight {
			batch = append(batch, tk)
		}
		p.mu.Unlock()
		now := p.mono()
		sent := batch[:0]
		for _, tk := range batch {
			if err := tk.d.InProgress(); err != nil {
				// seq and n are set before the task is tracked; nothing else is read here.
				p.log.Debug("in-progress heartbeat failed", zap.Uint64("stream_seq", tk.seq), zap.Uint64("delivery", tk.n), zap.Error(err))
				continue
			}
			sent = append(sent, tk)
		}
		// A heartbeat sent is only buffered, while disconnected or on a
		// black-holed link that still looks connected: it counts once the
		// server confirms it received what was sent.
		if !p.delivered(ctx) {
			continue
		}
		for _, tk := range sent {
			if now-tk.lastBeat.Swap(now) >= int64(p.cfg.AckWait) {
				tk.leaseGone.Store(true)
			}
		}
	}
}

// delivered reports whether everything sent to NATS so far reached the
// server, waiting at most AckWait/3 for its word.
func (p *Pool) delivered(ctx context.Context) bool {
	switch src := p.src.(type) {
	case interface{ Flush(context.Context) error }:
		ctx, cancel := context.WithTimeout(ctx, p.cfg.AckWait/3)
		defer cancel()
		return src.Flush(ctx) == nil
	case interface{ Connected() bool }:
		return src.Connected()
	}
	return true
}

func (p *Pool) track(t *task) {
	p.mu.Lock()
	p.inflight[t] = struct{}{}
	p.mu.Unlock()
}

func (p *Pool) untrack(t *task) {
	p.mu.Lock()
	delete(p.inflight, t)
	p.mu.Unlock()
}

// fetchBackoff spaces out pull requests while they fail (NATS down, consumer
// deleted), so the fetch loop never spins.
type fetchBackoff struct {
	mu    sync.Mutex
	fails int
}

func newFetchBackoff() *fetchBackoff { return &fetchBackoff{} }

func (f *fetchBackoff) failed() {
	f.mu.Lock()
	f.fails++
	f.mu.Unlock()
}

func (f *fetchBackoff) succeeded() {
	f.mu.Lock()
	f.fails = 0
	f.mu.Unlock()
}

func (f *fetchBackoff) wait(ctx context.Context) error {
	f.mu.Lock()
	fails := f.fails
	f.mu.Unlock()
	if fails == 0 {
		return nil
	}
	d := min(100*time.Millisecond<<min(fails, 6), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
