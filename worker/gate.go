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

// Backlog tells how many requests wait in the consumer, not yet delivered to
// any replica (queue.Conn implements it): a 403 whose region is idle here is
// judged alone only once nothing more can come.
type Backlog interface {
	Pending(ctx context.Context) (uint64, error)
}

// Share shares each region's open breaker and pause with the other replicas
// (queue.Fleet, through internal/wire): a replica that opens or pauses tells
// the others, and one replica probes for the fleet. Its answers come back
// through Pool.Follow.
type Share interface {
	// Report tells the fleet that this replica's own breaker or pause of
	// region changed. It must not block.
	Report(region string, e retry.HoldEvent)
}

// GateConfig tunes the circuit breakers and the credential pauses (one of
// each per region). Zero values mean the documented defaults.
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
	// while probes fail, up to BreakerMaxOpen. Defaults 250ms and 500ms.
	BreakerOpen    time.Duration
	BreakerMaxOpen time.Duration
	// ForbiddenRun is how many 403s on distinct jobs, with no success in
	// between, pause consumption like a 401. Default 20.
	ForbiddenRun int
	// ForbiddenHold is how long a 403 waits for a success (which proves
	// the credentials fine, so the 403 is about that job) before it is
	// dead-lettered anyway. Default 30s.
	ForbiddenHold time.Duration
	// ForbiddenIdle ends that wait sooner when nothing else of the region
	// is being worked on at this replica for this long and the consumer has
	// nothing more to deliver: no call is left to bring the success or the
	// run, and a lone 403 (often the last request of a drain) is about its
	// job. Default 2s; at most ForbiddenHold.
	ForbiddenIdle time.Duration
	// PauseProbe is the first wait between probes while paused for
	// credentials; it doubles up to PauseMaxProbe. Defaults 2s and 1m.
	PauseProbe    time.Duration
	PauseMaxProbe time.Duration
	// PauseLease is how long the fleet-wide consumer pause is set for; it
	// is renewed while paused, so a replica that dies while paused does
	// not stop the fleet forever. Default 2m.
	PauseLease time.Duration
	// RegionIdle is how long a region counts as in use after its last
	// request: the fetch loop goes on while a region in use is healthy,
	// and the consumer is paused fleet-wide only when every region in use
	// is paused. Default 1m.
	RegionIdle time.Duration
}

func (c GateConfig) withDefaults() GateConfig {
	if c.ForbiddenRun == 0 {
		c.ForbiddenRun = 20
	}
	if c.ForbiddenHold == 0 {
		c.ForbiddenHold = 30 * time.Second
	}
	if c.ForbiddenIdle == 0 {
		c.ForbiddenIdle = 2 * time.Second
	}
	c.ForbiddenIdle = min(c.ForbiddenIdle, c.ForbiddenHold)
	if c.RegionIdle == 0 {
		c.RegionIdle = time.Minute
	}
	return c
}

func (c GateConfig) breaker() retry.BreakerConfig {
	return retry.BreakerConfig{Window: c.BreakerWindow, MinCalls: c.BreakerMinCalls, Ratio: c.BreakerRatio,
		Open: c.BreakerOpen, MaxOpen: c.BreakerMaxOpen}
}

func (c GateConfig) pause() retry.PauseConfig {
	return retry.PauseConfig{Probe: c.PauseProbe, MaxProbe: c.PauseMaxProbe, Lease: c.PauseLease, ForbiddenRun: c.ForbiddenRun}
}

// probe says which of a region's state machines admitted a call as its
// probe; its answer goes back to that machine as the probe's verdict.
type probe uint8

const (
	notProbe probe = iota
	pauseProbe
	breakerProbe
)

// gate is the shell around the pure state machines of package retry: one
// circuit breaker and one credential pause per region. It holds them under
// one mutex, reads the clock, wakes waiters (ch is closed and replaced on
// every change), logs the transitions and performs the fleet-wide consumer
// pause and resume after unlocking. Regions are independent: one region's
// open breaker or pause holds only its own requests; fetching stops only
// when every region in use is held, and the consumer is paused for the
// whole fleet only when every region in use is paused.
type gate struct {
	cfg    GateConfig
	log    *zap.Logger
	pauser Pauser
	probe  func() // before a pause probe (re-read credentials)
	share  Share  // nil: each replica decides alone
	// backlog, when set, is asked before a lone 403 is judged; nil: the
	// region idle here is enough.
	backlog Backlog

	mu      sync.Mutex
	ch      chan struct{}
	regions map[string]*region
	// consumerPaused is the fleet-wide consumer pause as last decided.
	consumerPaused bool
	actions        uint64          // consumer actions decided
	pending        *consumerAction // decided under mu, performed after it

	ioMu    sync.Mutex // serialises consumer actions
	applied uint64     // gen of the last action performed
}

// region is one region's flow control.
type region struct {
	breaker *retry.Breaker
	pause   *retry.Pause
	seen    time.Time // last request for it
	shared  retry.SharedHold
	waiting int // requests waiting at its gate
	// busy counts the region's requests being handled here; verdicts those
	// of them waiting for a 403's verdict.
	busy, verdicts int
}

func newGate(cfg GateConfig, log *zap.Logger, pauser Pauser, probe func(), share Share) *gate {
	return &gate{
		cfg: cfg.withDefaults(), log: log, pauser: pauser, probe: probe, share: share,
		ch: make(chan struct{}), regions: map[string]*region{},
	}
}

// notify wakes every waiter; callers hold mu.
func (g *gate) notify() {
	close(g.ch)
	g.ch = make(chan struct{})
}

func (g *gate) region(name string, now time.Time) *region {
	r := g.known(name)
	r.seen = now
	return r
}

// known returns region name's flow control, without counting it in use.
func (g *gate) known(name string) *region {
	r, ok := g.regions[name]
	if !ok {
		r = &region{breaker: retry.NewBreaker(g.cfg.breaker()), pause: retry.NewPause(g.cfg.pause())}
		g.regions[name] = r
	}
	return r
}

// report tells the fleet about a change of this replica's own breaker or
// pause; callers hold mu (Share.Report does not block).
func (g *gate) report(name string, e retry.HoldEvent) {
	if g.share != nil {
		g.share.Report(name, e)
	}
}

// inUse reports whether r had a request within RegionIdle.
func (g *gate) inUse(r *region, now time.Time) bool { return now.Sub(r.seen) < g.cfg.RegionIdle }

// acquire blocks until a call to region may go out: not paused (or this
// call is the pause probe) and the breaker closed (or this call is the
// half-open probe). hold, when not nil, runs once before the first wait
// (the pool then frees the request's fetch slot for other regions). It
// returns promptly when ctx ends.
func (g *gate) acquire(ctx context.Context, name, job string, hold func()) (probe, error) {
	held := false
	for {
		g.mu.Lock()
		now := time.Now()
		r := g.region(name, now)
		var a retry.Admission
		if paused, _ := r.pause.Paused(); paused {
			if a = r.pause.Admit(now, job); a.Go {
				g.mu.Unlock()
				if g.probe != nil {
					g.probe()
				}
				return pauseProbe, nil
			}
		} else if a = r.breaker.Admit(now, job); a.Go {
			pr := notProbe
			if a.Probe {
				pr = breakerProbe
				g.log.Info("circuit breaker half-open: probing", zap.String("region", name))
				g.notify()
			}
			g.mu.Unlock()
			return pr, nil
		}
		ch := g.ch
		r.waiting++
		g.mu.Unlock()
		if !held && hold != nil {
			held = true
			hold()
		}
		wake := a.Wait
		if wake <= 0 { // until the probe answers (record and follow notify)
			wake = time.Second
		}
		err := wait(ctx, ch, wake)
		g.mu.Lock()
		r.waiting--
		g.mu.Unlock()
		if err != nil {
			return notProbe, err
		}
	}
}

// probeStarved reports whether the region's pause is due to probe from here
// with no request of it waiting here to probe with.
func (r *region) probeStarved(now time.Time) bool { return r.waiting == 0 && r.pause.Due(now) }

// enter counts a request of region name as being handled here until the
// returned func runs (by defer): a 403 waiting for its verdict looks at
// what else of its region is in flight.
func (g *gate) enter(name string) (leave func()) {
	g.mu.Lock()
	g.known(name).busy++
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.known(name).busy--
		g.mu.Unlock()
	}
}

// waiting reports whether requests of region name wait at the gate (the
// fleet's prober needs one to probe with).
func (g *gate) waitingIn(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.regions[name]
	return ok && r.waiting > 0
}

// wait blocks until ch is closed, d passes or ctx ends.
func wait(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// fetchAllowance says how many new messages the fetch loop may take: no
// limit (-1) while some region in use is healthy (or none is in use yet);
// else one fresh request per probe period when an open breaker needs one
// to probe with (the waiting ones may all be jobs whose probe failed); else
// none.
func (g *gate) fetchAllowance() (int, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	allow, used := 0, false
	for _, r := range g.regions {
		if !g.inUse(r, now) {
			continue
		}
		used = true
		if paused, _ := r.pause.Paused(); paused {
			if r.probeStarved(now) {
				allow = 1 // a request to probe with (see letProbesIn)
			}
			continue
		}
		switch r.breaker.Fetch(now) {
		case -1:
			return -1, g.ch
		case 1:
			allow = 1
		}
	}
	if !used {
		return -1, g.ch
	}
	return allow, g.ch
}

// letProbesIn lifts the fleet-wide consumer pause when a paused region's
// probe is due here and no request of it waits here to probe with (every
// replica restarted during the pause, handing its held requests back): the
// gate keeps holding the region's requests, the first one in probes, and a
// failed probe pauses the consumer again. Without it the fleet waited for
// the pause's lease (2 minutes) after its cause was gone.
func (g *gate) letProbesIn(ctx context.Context) {
	g.mu.Lock()
	if g.consumerPaused {
		now := time.Now()
		for name, r := range g.regions {
			if r.probeStarved(now) {
				g.log.Info("paused with no request to probe with: letting requests in for the probe", zap.String("region", name))
				g.consumerPaused = false
				g.decide(false, time.Time{})
				break
			}
		}
	}
	g.unlockAndApply(ctx)
}

// waitOpen blocks until new messages may be fetched and returns how many
// (-1 = as many as there are free slots).
func (g *gate) waitOpen(ctx context.Context) (int, error) {
	for {
		g.letProbesIn(ctx)
		allow, ch := g.fetchAllowance()
		if allow != 0 {
			return allow, nil
		}
		if err := wait(ctx, ch, 250*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// record feeds a call's class to the region's breaker and pause. It returns
// whether the region's breaker is now open (a transient failure then does
// not spend the request's attempt budget), and whether a 403 is about the
// job (see retry.PauseChange.JobLevel).
func (g *gate) record(ctx context.Context, name, job string, class retry.Class, code string, pr probe) (breakerOpen, jobLevel bool) {
	g.mu.Lock()
	now := time.Now()
	r := g.region(name, now)
	c := r.pause.Record(now, job, class, code, pr == pauseProbe)
	if c.Changed {
		g.notify()
	}
	switch c.Action {
	case retry.PauseNow:
		if c.New {
			_, reason := r.pause.Paused()
			g.log.Error("paused: "+reason+"; probing with backoff, nothing is dead-lettered meanwhile",
				zap.String("region", name), zap.Duration("next_probe", r.pause.NextProbe()))
			g.report(name, retry.HoldEvent{Kind: retry.HoldPause, Held: true, Reason: reason})
		}
		g.consumerLocked(now, c.Until)
	case retry.ResumeNow:
		g.log.Info("resumed: the API accepts the credentials again", zap.String("region", name), zap.String("was", c.Was))
		g.report(name, retry.HoldEvent{Kind: retry.HoldPause})
		g.consumerLocked(now, time.Time{})
	}
	was := r.breaker.Record(now, retry.VerdictOf(class), pr == breakerProbe)
	if st := r.breaker.State(); st != was {
		switch st {
		case retry.BreakerOpen:
			if was == retry.BreakerClosed {
				failed, of := r.breaker.Failures()
				g.log.Error("circuit breaker open: most API calls fail; no new requests for this region until a probe succeeds",
					zap.String("region", name), zap.Int("failed", failed), zap.Int("of", of))
				g.report(name, retry.HoldEvent{Kind: retry.HoldBreaker, Held: true, Reason: breakerReason})
			}
		case retry.BreakerClosed:
			g.log.Info("circuit breaker closed: the API answers again", zap.String("region", name))
			g.report(name, retry.HoldEvent{Kind: retry.HoldBreaker})
		}
		g.notify()
	}
	breakerOpen = r.breaker.State() == retry.BreakerOpen
	g.unlockAndApply(ctx)
	return breakerOpen, c.JobLevel
}

// breakerReason is an open breaker's reason in the fleet's hold.
const breakerReason = "most API calls fail"

// Follow applies the fleet's hold of region ("" = the default) as this
// replica last read it: a breaker opened or a region paused by another
// replica holds this one's requests too (only the fleet's prober probes),
// and a probe that succeeded anywhere closes or resumes it here. A view
// that is not Known (the fleet's KV unreadable) lets this replica's breaker
// and pause decide alone again. queue.Fleet calls it (through internal/wire)
// after each sync that changed the view.
func (p *Pool) Follow(ctx context.Context, region string, v retry.SharedHold) {
	p.gate.follow(ctx, region, v)
}

// Waiting reports whether requests of region wait at this replica's breaker
// or pause: the fleet's prober needs one to probe with.
func (p *Pool) Waiting(region string) bool { return p.gate.waitingIn(region) }

func (g *gate) follow(ctx context.Context, name string, v retry.SharedHold) {
	g.mu.Lock()
	now := time.Now()
	r := g.known(name)
	prev := r.shared
	r.shared = v
	switch {
	case !v.Known:
		r.breaker.Alone()
		r.pause.Alone()
	case v.Kind == retry.HoldPause:
		if c := r.pause.FleetPaused(now, v.Reason, v.Probe); c.New {
			g.log.Error("paused by the fleet: "+v.Reason+"; one replica probes, nothing is dead-lettered meanwhile",
				zap.String("region", name), zap.Bool("prober", v.Probe))
			g.consumerLocked(now, c.Until)
		}
	case prev.Kind == retry.HoldPause:
		if c := r.pause.FleetResumed(); c.Action == retry.ResumeNow {
			g.log.Info("resumed by the fleet: a probe passed", zap.String("region", name), zap.String("was", c.Was))
			g.consumerLocked(now, time.Time{})
		}
	}
	if v.Known {
		switch {
		case v.Kind == retry.HoldBreaker:
			if was := r.breaker.FleetOpen(now, v.Probe); was == retry.BreakerClosed {
				g.log.Error("circuit breaker open by the fleet: most API calls fail; one replica probes",
					zap.String("region", name), zap.Bool("prober", v.Probe))
			}
		case prev.Kind == retry.HoldBreaker:
			if was := r.breaker.FleetClosed(); was != retry.BreakerClosed {
				g.log.Info("circuit breaker closed by the fleet: the API answers again", zap.String("region", name))
			}
		}
	}
	g.notify()
	g.unlockAndApply(ctx)
}

// consumerLocked decides the fleet-wide consumer pause after a region's
// pause changed: paused (until the lease's end) while every region in use
// is paused, resumed as soon as one is not. until is zero on a resume.
func (g *gate) consumerLocked(now, until time.Time) {
	all := true
	for _, r := range g.regions {
		if paused, _ := r.pause.Paused(); g.inUse(r, now) && !paused {
			all = false
			break
		}
	}
	switch {
	case all && !until.IsZero():
		g.consumerPaused = true
		g.decide(true, until)
	case !all && g.consumerPaused:
		g.consumerPaused = false
		g.decide(false, time.Time{})
	}
}

// consumerAction is a fleet-wide pause or resume of the consumer, decided
// under the gate's lock and performed after it (a NATS call may take
// seconds; readiness and every caller would wait on the lock meanwhile).
type consumerAction struct {
	gen   uint64 // order of decision: an older action never undoes a newer one
	pause bool
	until time.Time
}

// unlockAndApply releases mu, which the caller holds, and performs the
// consumer action decided under it, if any.
func (g *gate) unlockAndApply(ctx context.Context) {
	act := g.pending
	g.pending = nil
	g.mu.Unlock()
	g.apply(ctx, act)
}

// decide records a consumer action to perform once the lock is released.
func (g *gate) decide(pause bool, until time.Time) {
	g.actions++
	g.pending = &consumerAction{gen: g.actions, pause: pause, until: until}
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

// forbiddenVerdict waits to learn whether a 403 is about this job (a
// success in its region proves the credentials fine: dead-letter it) or
// part of a run (the region paused: retry it after resume; record then says
// whether its next 403 is about the job). It gives up waiting after
// ForbiddenHold, or ForbiddenIdle with nothing else of the region in flight
// here and nothing more in the consumer, and dead-letters.
//
// While it waits it holds no fetch slot (s.hold), so a run longer than the
// concurrency can be seen.
func (g *gate) forbiddenVerdict(ctx context.Context, name, job string, s *slots) (deadLetter bool, err error) {
	s.hold()
	defer s.unhold()
	g.mu.Lock()
	r := g.region(name, time.Now())
	gen := r.pause.Successes()
	r.verdicts++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		r.verdicts--
		g.mu.Unlock()
	}()
	deadline := time.NewTimer(g.cfg.ForbiddenHold)
	defer deadline.Stop()
	var idleSince time.Time
	for {
		g.mu.Lock()
		now := time.Now()
		r.seen = now
		paused, _ := r.pause.Paused()
		if paused {
			r.pause.Hold(job)
		}
		// A 403 recorded in a run whose pause already ended (this handler
		// came late: a loaded machine) is retried, not judged by the
		// successes that ended the pause.
		through := r.pause.HeldThroughResume(job)
		okGen, ch := r.pause.Successes(), g.ch
		// Nothing but 403s waiting for their verdicts: no call is left
		// here to bring a success or the rest of a run.
		idle := r.busy <= r.verdicts
		g.mu.Unlock()
		switch {
		case paused, through:
			return false, nil
		case okGen != gen:
			return true, nil
		case !idle:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = now
		case now.Sub(idleSince) >= g.cfg.ForbiddenIdle:
			if g.backlogEmpty(ctx) {
				return true, nil
			}
			idleSince = now // requests may still come: ask again an idle time later
		}
		// Busy counts move without a notify (every request would wake every
		// waiter): look again within a tenth of the idle time.
		if err := wait(ctx, ch, g.cfg.ForbiddenIdle/10); err != nil {
			return false, err
		}
		select {
		case <-deadline.C:
			return true, nil
		default:
		}
	}
}

// backlogEmpty asks whether the consumer has nothing left to deliver. A
// failed answer counts as not empty: the 403 then waits on, at most
// ForbiddenHold.
func (g *gate) backlogEmpty(ctx context.Context) bool {
	if g.backlog == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ForbiddenIdle)
	defer cancel()
	n, err := g.backlog.Pending(ctx)
	return err == nil && n == 0
}

// State is a snapshot of the pool's flow control, for readiness, the
// gauges and the status page.
type State struct {
	// Paused: consumption is paused (every region in use is paused); the
	// pool is not ready.
	Paused bool
	// PauseReason says why, when Paused (else the first paused region's).
	PauseReason string
	// Regions maps region ("" = the default) to its flow control.
	Regions map[string]RegionState
}

// RegionState is one region's breaker and pause.
type RegionState struct {
	Breaker     retry.BreakerState `json:"breaker"`
	Paused      bool               `json:"paused"`
	PauseReason string             `json:"pause_reason,omitempty"`
}

// Breaker is the most open of the regions' breakers.
func (s State) Breaker() retry.BreakerState {
	worst := retry.BreakerClosed
	for _, r := range s.Regions {
		worst = max(worst, r.Breaker)
	}
	return worst
}

func (g *gate) state() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := State{Paused: g.consumerPaused, Regions: make(map[string]RegionState, len(g.regions))}
	for name, r := range g.regions {
		paused, reason := r.pause.Paused()
		s.Regions[name] = RegionState{Breaker: r.breaker.State(), Paused: paused, PauseReason: reason}
		if paused && s.PauseReason == "" {
			s.PauseReason = reason
		}
	}
	return s
}
