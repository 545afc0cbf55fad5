package worker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Pauser stops and restarts delivery to every replica of the consumer
// (JetStream consumer pause). queue.Conn implements it.
type Pauser interface {
	PauseConsumer(ctx context.Context, until time.Time) error
	ResumeConsumer(ctx context.Context) error
}

// GateConfig tunes the circuit breaker and the credential pause. Zero
// values mean the documented defaults.
type GateConfig struct {
	// BreakerWindow is how many recent calls (per region) the breaker
	// looks at. Default 20.
	BreakerWindow int
	// BreakerMinCalls is the fewest calls in the window before it may
	// open. Default 10.
	BreakerMinCalls int
	// BreakerRatio opens the breaker when at least this share of the
	// window failed with 5xx, 408, a timeout or a transport error.
	// Default 0.5.
	BreakerRatio float64
	// BreakerOpen is the first wait before a half-open probe; it doubles
	// while probes fail, up to BreakerMaxOpen. Defaults 250ms and 500ms:
	// two calls a second do not hammer a recovering API, and the pool
	// resumes within about half a second of it coming back
	// (docs/performance.md).
	BreakerOpen    time.Duration
	BreakerMaxOpen time.Duration
	// ForbiddenRun is how many 403s on distinct jobs, with no success in
	// between, pause consumption like a 401. Default 20.
	ForbiddenRun int
	// ForbiddenHold is how long a 403 waits for a success (which proves
	// the credentials fine, so the 403 is about that job) before it is
	// dead-lettered anyway. Default 30s.
	ForbiddenHold time.Duration
	// PauseProbe is the first wait between probes while paused for
	// credentials; it doubles up to PauseMaxProbe. Defaults 2s and 1m.
	PauseProbe    time.Duration
	PauseMaxProbe time.Duration
	// PauseLease is how long the fleet-wide consumer pause is set for; it
	// is renewed while paused, so a replica that dies while paused does
	// not stop the fleet forever. Default 2m.
	PauseLease time.Duration
}

func (c GateConfig) withDefaults() GateConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.BreakerWindow == 0 {
		c.BreakerWindow = 20
	}
	if c.BreakerMinCalls == 0 {
		c.BreakerMinCalls = 10
	}
	if c.BreakerRatio == 0 {
		c.BreakerRatio = 0.5
	}
	if c.ForbiddenRun == 0 {
		c.ForbiddenRun = 20
	}
	def(&c.BreakerOpen, 250*time.Millisecond)
	def(&c.BreakerMaxOpen, 500*time.Millisecond)
	def(&c.ForbiddenHold, 30*time.Second)
	def(&c.PauseProbe, 2*time.Second)
	def(&c.PauseMaxProbe, time.Minute)
	def(&c.PauseLease, 2*time.Minute)
	return c
}

// Breaker states, as exported by State.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half_open"
	BreakerOpen     = "open"
)

// gate decides whether a call may go out: it holds the per-region circuit
// breakers and the process-wide credential pause. Waiters block on ch,
// which is closed and replaced on every change.
type gate struct {
	cfg    GateConfig
	log    *zap.Logger
	pauser Pauser
	probe  func() // before a credential probe (re-read credentials)

	mu       sync.Mutex
	ch       chan struct{}
	breakers map[string]*breaker
	actions  uint64          // consumer actions decided
	pending  *consumerAction // decided under mu, performed after it

	ioMu    sync.Mutex // serialises consumer actions
	applied uint64     // gen of the last action performed

	paused      bool
	pauseReason string
	pauseWait   time.Duration
	pauseProbe  time.Time // earliest next probe while paused
	probing     bool      // a pause probe is out

	okGen     uint64              // bumped by each success
	forbidden map[string]struct{} // distinct jobs answered 403 since the last success
	// held maps a job retried after a 403-run pause to the resumes count
	// at that time. Once a resume has happened since (an answer proved the
	// credentials), its next 403 is about the job: it is dead-lettered and
	// does not count toward a new run, so a block of forbidden jobs does
	// not pause, resume and retry in a loop.
	held    map[string]uint64
	resumes uint64
	// pauseFailed holds the jobs whose pause probe failed since the pause
	// began: they yield the next probe to jobs that have not tried, so a
	// request that can prove the credentials is not starved by held
	// requests that cannot.
	pauseFailed map[string]struct{}
}

type breaker struct {
	region   string
	state    string
	window   []bool // true = failure
	next     int
	filled   int
	fails    int
	wait     time.Duration
	until    time.Time // open until
	probing  bool
	probeJob string
	// failedProbes holds the jobs whose probe failed while open: they do
	// not probe again, so a few jobs that always fail cannot keep the
	// breaker open; a fresh request fetched for the purpose probes instead.
	failedProbes map[string]struct{}
	// probeFetch is when the fetch loop last took a fresh request to
	// probe with.
	probeFetch time.Time
}

func newGate(cfg GateConfig, log *zap.Logger, pauser Pauser, probe func()) *gate {
	return &gate{
		cfg: cfg.withDefaults(), log: log, pauser: pauser, probe: probe,
		ch: make(chan struct{}), breakers: map[string]*breaker{}, forbidden: map[string]struct{}{}, held: map[string]uint64{},
		pauseFailed: map[string]struct{}{},
	}
}

// notify wakes every waiter; callers hold mu.
func (g *gate) notify() {
	close(g.ch)
	g.ch = make(chan struct{})
}

func (g *gate) breaker(region string) *breaker {
	b, ok := g.breakers[region]
	if !ok {
		b = &breaker{region: region, state: BreakerClosed, window: make([]bool, g.cfg.BreakerWindow)}
		g.breakers[region] = b
	}
	return b
}

// acquire blocks until a call to region may go out: not paused (or this
// call is the pause probe) and the breaker closed (or this call is the
// half-open probe). It returns promptly when ctx ends.
func (g *gate) acquire(ctx context.Context, region, jobID string) (probe bool, err error) {
	for {
		g.mu.Lock()
		now := time.Now()
		var wake time.Duration
		switch {
		case g.paused:
			switch {
			case g.probing: // wait for the probe's answer (record notifies)
				wake = time.Second
			case now.Before(g.pauseProbe):
				wake = max(time.Until(g.pauseProbe), time.Millisecond)
			case g.mayProbePause(now, jobID):
				g.probing = true
				g.mu.Unlock()
				if g.probe != nil {
					g.probe()
				}
				return true, nil
			default: // due, but this job failed one: others first
				wake = max(time.Until(g.pauseProbe.Add(g.pauseWait)), time.Millisecond)
			}
		default:
			b := g.breaker(region)
			switch {
			case b.state == BreakerClosed:
				g.mu.Unlock()
				return false, nil
			// A job whose probe failed yields to others for one period
			// (a fresh request is fetched meanwhile); after that it may
			// probe again, so probes never stop, whatever is in flight.
			case b.state == BreakerOpen && !now.Before(b.until) &&
				(!b.failedProbe(jobID) || now.Sub(b.until) >= b.wait):
				b.state = BreakerHalfOpen
				b.probing, b.probeJob = true, jobID
				g.log.Info("circuit breaker half-open: probing", zap.String("region", region))
				g.notify()
				g.mu.Unlock()
				return true, nil
			case b.state == BreakerOpen && now.Before(b.until):
				wake = max(time.Until(b.until), time.Millisecond)
			case b.state == BreakerOpen: // probe due, but this job failed one
				wake = max(time.Until(b.until.Add(b.wait)), time.Millisecond)
			default: // half-open with its probe out: wait for its answer
				wake = time.Second
			}
		}
		ch := g.ch
		g.mu.Unlock()
		t := time.NewTimer(wake)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
		t.Stop()
	}
}

// mayProbePause says whether job may take a due pause probe: at once if
// it has not failed one in this pause, else only a period after it is due
// (no other job took it), so probes never stop.
func (g *gate) mayProbePause(now time.Time, job string) bool {
	_, failed := g.pauseFailed[job]
	return !failed || now.Sub(g.pauseProbe) >= g.pauseWait
}

func (b *breaker) failedProbe(jobID string) bool {
	_, ok := b.failedProbes[jobID]
	return ok
}

// fetchAllowance says how many new messages the fetch loop may take: none
// while paused or while a breaker is not closed, except one fresh request
// per probe period to probe an open breaker with (the waiting ones may all
// be jobs whose probe failed); -1 means no limit.
func (g *gate) fetchAllowance() (int, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return 0, g.ch
	}
	now := time.Now()
	allow := -1
	for _, b := range g.breakers {
		switch {
		case b.state == BreakerClosed:
		case b.state == BreakerOpen && !now.Before(b.until) && !b.probing && len(b.failedProbes) > 0 &&
			now.Sub(b.probeFetch) >= b.wait:
			b.probeFetch = now
			allow = 1
		default:
			return 0, g.ch
		}
	}
	return allow, g.ch
}

// waitOpen blocks until new messages may be fetched and returns how many
// (-1 = as many as there are free slots).
func (g *gate) waitOpen(ctx context.Context) (int, error) {
	for {
		allow, ch := g.fetchAllowance()
		if allow != 0 {
			return allow, nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
		t.Stop()
	}
}

// record feeds a call's class to the breaker and the pause. It returns
// whether the breaker of region is now open (a transient failure then
// does not spend the request's attempt budget).
//
// jobLevel reports a 403 from a job held through a 403-run pause that has
// ended since (an answer proved the credentials after its last 403): it is
// about the job, to be dead-lettered, and counts toward no run.
func (g *gate) record(ctx context.Context, region, jobID string, class retry.Class, code string, probe bool) (breakerOpen, jobLevel bool) {
	g.mu.Lock()
	breakerOpen, jobLevel = g.recordLocked(region, jobID, class, code, probe)
	act := g.pending
	g.pending = nil
	g.mu.Unlock()
	g.apply(ctx, act)
	return breakerOpen, jobLevel
}

// consumerAction is a fleet-wide pause or resume of the consumer, decided
// under the gate's lock and performed after it (a NATS call may take
// seconds; readiness and every caller would wait on the lock meanwhile).
type consumerAction struct {
	gen   uint64 // order of decision: an older action never undoes a newer one
	pause bool
	until time.Time
}

// apply performs a decided consumer action, unless a newer one was
// performed already (two callers may race to apply theirs).
func (g *gate) apply(ctx context.Context, a *consumerAction) {
	if a == nil || g.pauser == nil {
		return
	}
	g.ioMu.Lock()
	defer g.ioMu.Unlock()
	if a.gen <= g.applied {
		return
	}
	g.applied = a.gen
	if a.pause {
		if err := g.pauser.PauseConsumer(ctx, a.until); err != nil {
			g.log.Warn("fleet-wide consumer pause failed; pausing this process only", zap.Error(err))
		}
		return
	}
	if err := g.pauser.ResumeConsumer(ctx); err != nil {
		g.log.Warn("fleet-wide consumer resume failed; it resumes when the pause lease ends", zap.Error(err))
	}
}

// decide records a consumer action to perform once the lock is released.
func (g *gate) decide(pause bool, until time.Time) {
	g.actions++
	g.pending = &consumerAction{gen: g.actions, pause: pause, until: until}
}

func (g *gate) recordLocked(region, jobID string, class retry.Class, code string, probe bool) (breakerOpen, jobLevel bool) {
	b := g.breaker(region)
	failure := class == retry.Transient

	// The pause: a 401 (or a 403 run) pauses; any answer proving the
	// credentials good resumes.
	switch class {
	case retry.Unauthorized, retry.Configuration:
		if probe && g.paused {
			g.pauseFailed[jobID] = struct{}{}
		}
		g.pauseLocked(pauseReason(class, code), probe)
	case retry.Forbidden:
		if at, held := g.held[jobID]; held && g.resumes > at {
			// About this job: neither part of a run nor, as a probe, a
			// verdict on the pause.
			delete(g.held, jobID)
			jobLevel = true
			g.probeInconclusiveLocked(probe)
			break
		}
		if g.paused {
			if probe {
				g.pauseFailed[jobID] = struct{}{}
			}
			g.pauseLocked(g.pauseReason, probe) // a probe answered 403 again
			break
		}
		g.forbidden[jobID] = struct{}{}
		if len(g.forbidden) >= g.cfg.ForbiddenRun {
			g.pauseLocked("a run of 403s on distinct jobs: missing IAM permission?", probe)
		}
	case retry.Success, retry.ClientError:
		delete(g.held, jobID)
		if class == retry.Success {
			g.okGen++
			clear(g.forbidden)
			g.notify()
		}
		if g.paused {
			g.resumeLocked()
		}
	case retry.Transient, retry.Throttled, retry.Canceled:
		g.probeInconclusiveLocked(probe)
	}

	// The breaker, per region: only 5xx/transport failures count; any
	// other answer shows the API is up.
	if class == retry.Canceled || class == retry.Throttled || class.Pauses() {
		if probe && b.state == BreakerHalfOpen {
			// No verdict from this probe: let another one go now.
			b.probing = false
			b.state, b.until = BreakerOpen, time.Now()
			g.notify()
		}
		return b.state == BreakerOpen, jobLevel
	}
	switch b.state {
	case BreakerHalfOpen:
		if !probe {
			return false, jobLevel
		}
		b.probing = false
		if failure {
			if b.failedProbes == nil {
				b.failedProbes = map[string]struct{}{}
			}
			b.failedProbes[b.probeJob] = struct{}{}
			b.wait = min(b.wait*2, g.cfg.BreakerMaxOpen)
			b.state, b.until = BreakerOpen, time.Now().Add(b.wait)
		} else {
			b.state = BreakerClosed
			b.reset()
			clear(b.failedProbes)
			g.log.Info("circuit breaker closed: the API answers again", zap.String("region", region))
		}
		g.notify()
	case BreakerClosed:
		b.add(failure)
		if b.filled >= g.cfg.BreakerMinCalls && float64(b.fails) >= g.cfg.BreakerRatio*float64(b.filled) {
			b.wait = g.cfg.BreakerOpen
			b.state, b.until = BreakerOpen, time.Now().Add(b.wait)
			g.log.Error("circuit breaker open: most API calls fail; no new requests until a probe succeeds",
				zap.String("region", region), zap.Int("failed", b.fails), zap.Int("of", b.filled))
			g.notify()
		}
	}
	return b.state == BreakerOpen, jobLevel
}

func (b *breaker) add(failure bool) {
	if b.filled == len(b.window) {
		if b.window[b.next] {
			b.fails--
		}
	} else {
		b.filled++
	}
	b.window[b.next] = failure
	if failure {
		b.fails++
	}
	b.next = (b.next + 1) % len(b.window)
}

func (b *breaker) reset() {
	clear(b.window)
	b.next, b.filled, b.fails = 0, 0, 0
}

// pauseLocked pauses and pauses the consumer fleet-wide for PauseLease.
// While paused, only a failed probe backs the next probe off: the other
// calls that were in flight when the pause began answer the same and say
// nothing new, so a burst of them must not push the probe wait to its cap.
func (g *gate) pauseLocked(reason string, probe bool) {
	switch {
	case !g.paused:
		g.paused, g.pauseReason, g.pauseWait = true, reason, g.cfg.PauseProbe
		g.log.Error("paused: "+reason+"; probing with backoff, nothing is dead-lettered meanwhile",
			zap.Duration("next_probe", g.pauseWait))
	case probe:
		g.pauseWait = min(g.pauseWait*2, g.cfg.PauseMaxProbe)
	default:
		return
	}
	g.probing = false
	g.pauseProbe = time.Now().Add(g.pauseWait)
	g.decide(true, time.Now().Add(g.cfg.PauseLease))
	g.notify()
}

// pauseReason says why a pausing answer pauses, for logs, readiness and the
// status page.
func pauseReason(class retry.Class, code string) string {
	switch {
	case class == retry.Unauthorized && code != "":
		return "api rejected the credentials (401 " + code + ")"
	case class == retry.Unauthorized:
		return "api rejected the credentials (401)"
	case retry.CanonicalCode(code) == "APIG.0101":
		return "the API is not published at this endpoint (APIG.0101): wrong --endpoint or --region?"
	case code != "":
		return "the API refuses every call (" + code + "): missing IAM permission or unavailable project?"
	default:
		return "the API refuses every call: configuration"
	}
}

func (g *gate) resumeLocked() {
	g.paused, g.probing = false, false
	g.resumes++
	clear(g.pauseFailed)
	clear(g.forbidden)
	g.log.Info("resumed: the API accepts the credentials again", zap.String("was", g.pauseReason))
	g.pauseReason = ""
	g.decide(false, time.Time{})
	g.notify()
}

// probeInconclusiveLocked lets another pause probe go a period later when
// this call was the probe and its answer says nothing about credentials.
func (g *gate) probeInconclusiveLocked(probe bool) {
	if probe && g.paused {
		g.probing = false
		g.pauseProbe = time.Now().Add(g.pauseWait)
	}
}

// maxHeld bounds the held set: entries of jobs that ended otherwise (nak,
// shutdown) are dropped wholesale past it, which costs at most one more
// retry each.
const maxHeld = 1 << 14

// forbiddenVerdict waits to learn whether a 403 is about this job (a
// success elsewhere proves the credentials fine: dead-letter it) or part of
// a run (the pool paused: retry it after resume; record then says whether
// its next 403 is about the job). It gives up waiting after ForbiddenHold
// and dead-letters.
func (g *gate) forbiddenVerdict(ctx context.Context, job string) (deadLetter bool, err error) {
	g.mu.Lock()
	gen := g.okGen
	g.mu.Unlock()
	deadline := time.NewTimer(g.cfg.ForbiddenHold)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		paused, okGen, ch := g.paused, g.okGen, g.ch
		if paused {
			if len(g.held) >= maxHeld {
				clear(g.held)
			}
			g.held[job] = g.resumes
		}
		g.mu.Unlock()
		switch {
		case paused:
			return false, nil
		case okGen != gen:
			return true, nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// State is a snapshot for readiness and metrics.
type State struct {
	Paused      bool
	PauseReason string
	// Breakers maps region ("" = default) to BreakerClosed, BreakerHalfOpen
	// or BreakerOpen.
	Breakers map[string]string
}

func (g *gate) state() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := State{Paused: g.paused, PauseReason: g.pauseReason, Breakers: map[string]string{}}
	for r, b := range g.breakers {
		s.Breakers[r] = b.state
	}
	return s
}
