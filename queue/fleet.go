package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// FleetConfig configures a Fleet.
type FleetConfig struct {
	// Name is this replica's name (pod), unique in the fleet.
	Name string
	// Region names the regional quota this fleet shares: each region's
	// rate lives under its own key ("fleet" for "", the default region;
	// "fleet.<region>" for the others).
	Region string
	// Policy is the fleet's AIMD policy (retry.FleetPolicyOf).
	Policy retry.FleetPolicy
	// Period is how often the replica beats and reads the fleet's state. Default 100ms.
	Period time.Duration
	// Pacer paces this replica: it receives its share and reports its admitted rate
	// (retry.Limiter).
	Pacer Pacer
}

// Pacer is the replica's side of the fleet: retry.Limiter implements it.
type Pacer interface {
	// SetShare sets this replica's rate in req/s (0 = no limit); called when it changes.
	SetShare(r float64)
	// Rates returns this replica's admitted and successful calls per second, its part of
	// the fleet's measures.
	Rates() (admitted, succeeded float64)
	// Bound reports whether the share held a call back since the last Bound.
	Bound() bool
}

// fleetState is the one KV value the replicas share: the fleet's rate, the
// region's open breaker or pause, and who is alive.
type fleetState struct {
	Rate     retry.FleetRate         `json:"rate"`
	Hold     *retry.FleetHold        `json:"hold,omitempty"`
	Replicas map[string]fleetReplica `json:"replicas,omitempty"`
}

type fleetReplica struct {
	Beat      uint64  `json:"beat"`              // bumped every Period while the replica runs
	Admitted  float64 `json:"admitted"`          // its admitted calls per second
	Succeeded float64 `json:"succeeded"`         // its calls per second the API served (not throttled)
	Waiting   bool    `json:"waiting,omitempty"` // requests wait at its gate for this region
	Bound     bool    `json:"bound,omitempty"`   // its share held a call back since its last sync
}

// Follower is the replica's gate as the fleet's hold of a region reaches it:
// worker.Pool implements it.
type Follower interface {
	// Follow applies the fleet's hold as this replica reads it.
	Follow(ctx context.Context, region string, v retry.SharedHold)
	// Waiting reports whether requests of region wait at the gate.
	Waiting(region string) bool
}

// staleSyncs is how many failed syncs in a row make the fleet's hold unknown:
// the replica's breaker and pause then decide alone (a KV outage never blocks).
const staleSyncs = 5

// Fleet shares the API rate between the replicas of a worker through one key of a NATS
// KV bucket (the AIMD of retry.FleetRate, one level up): every Period each replica bumps
// its beat and reports its admitted rate with a compare-and-set, applying the cut or the
// raise its own throttles and successes call for; every replica paces itself to the
// fleet's rate divided by the live replicas. A replica whose beat stops for three of this
// replica's periods is not counted (no clock is compared between machines).
//
// No call waits on NATS: a KV error leaves every replica at its last share, and a
// replica that cannot reach the bucket for long falls back to an even share of the cap
// (or none, adaptive only) as it was at its last read. Fleet is safe for concurrent use;
// Run is its one goroutine.
type Fleet struct {
	kv  jetstream.KeyValue
	key string
	cfg FleetConfig
	log *zap.Logger

	throttled atomic.Bool  // a throttle was reported since the last sync
	succeeded atomic.Int64 // successes reported since the last sync
	wake      chan struct{}

	evMu   sync.Mutex
	events []retry.HoldEvent // breaker and pause changes reported since the last sync

	follower Follower // set by Watch before Run

	// Owned by Run's goroutine (and NewFleet before it).
	seen       map[string]seenBeat // other replicas' last beat and when it changed, locally
	reads      uint64              // this replica's successful reads of the state
	beat       uint64
	rate       retry.FleetRate
	rateAt     time.Time // when this replica last saw the rate change
	cutAt      time.Time // when it last saw the rate cut
	lastThrott time.Time
	bound      bool // the share bound, not yet written (a failed sync)
	share      float64
	live       int
	view       retry.SharedHold // the hold as last given to the follower
	hold       *retry.FleetHold // the hold as last read or written
}

type seenBeat struct {
	beat uint64
	at   time.Time
	read uint64 // this replica's reads when the beat changed
}

// Fleet creates (unless NoCreate) the bucket "<Stream>_RATE", joins the fleet and sets
// the first share before it returns; Run keeps it up to date.
func (c *Conn) Fleet(ctx context.Context, cfg FleetConfig) (*Fleet, error) {
	if cfg.Name == "" || cfg.Pacer == nil {
		return nil, errors.New("fleet: Name and Pacer are required")
	}
	if cfg.Period <= 0 {
		cfg.Period = 100 * time.Millisecond
	}
	kv, err := c.RateBucket(ctx)
	if err != nil {
		return nil, err
	}
	key := "fleet"
	if cfg.Region != "" {
		key += "." + cfg.Region
	}
	f := &Fleet{kv: kv, key: key, cfg: cfg, log: c.log, wake: make(chan struct{}, 1), seen: map[string]seenBeat{}}
	f.rate = cfg.Policy.Start()
	if err := f.sync(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("fleet: join: %w", err)
	}
	// The others count this replica at their next sync, within a Period: the share is
	// read again after one, so that a replica joining never sends the fleet over.
	t := time.NewTimer(cfg.Period)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := f.sync(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("fleet: join: %w", err)
	}
	return f, nil
}

// RateBucket creates (unless NoCreate) or binds the bucket "<Stream>_RATE" that holds the
// fleet's rate: an operator provisioning for --no-create workers calls it once.
func (c *Conn) RateBucket(ctx context.Context) (jetstream.KeyValue, error) {
	bucket := c.cfg.Stream + "_RATE"
	var (
		kv  jetstream.KeyValue
		err error
	)
	if c.cfg.NoCreate {
		kv, err = c.JS.KeyValue(ctx, bucket)
	} else {
		kv, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "fleet-wide API rate of the recover workers",
			History: 1, TTL: time.Hour, Storage: jetstream.MemoryStorage, Replicas: c.cfg.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("rate bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Throttled reports a throttle answer; the fleet's rate is cut at the next sync (at
// once), unless it was changed within the Cooldown.
func (f *Fleet) Throttled() {
	f.throttled.Store(true)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Succeeded reports a successful call.
func (f *Fleet) Succeeded() { f.succeeded.Add(1) }

// Report tells the fleet that this replica's own breaker or pause of the
// region changed: the hold is shared at the next sync (at once). It does not
// block (worker.Share).
func (f *Fleet) Report(e retry.HoldEvent) {
	f.evMu.Lock()
	f.events = append(f.events, e)
	f.evMu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Watch makes Run give follower the fleet's hold of the region after every
// sync that changes it (and an unknown hold when the bucket stays
// unreadable), and ask it whether requests wait. Call it before Run.
func (f *Fleet) Watch(follower Follower) { f.follower = follower }

// Region is the region this fleet shares ("" = the default).
func (f *Fleet) Region() string { return f.cfg.Region }

// Run syncs every Period (and at once on a throttle) until ctx ends, then leaves the
// fleet so the others take its share at once.
func (f *Fleet) Run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Period)
	defer t.Stop()
	failing := 0
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			f.leave(context.WithoutCancel(ctx))
			return
		case <-t.C:
		case <-f.wake:
			if time.Since(last) < f.cfg.Period/8 {
				continue // a throttle storm syncs a few times a period, not per answer
			}
		}
		last = time.Now()
		if err := f.sync(ctx, last); err != nil && ctx.Err() == nil {
			failing++
			if failing == 1 || failing%40 == 0 {
				f.log.Warn("fleet rate: NATS KV unavailable; keeping the last share", zap.Int("failures", failing), zap.Error(err))
			}
			if failing >= staleSyncs {
				f.follow(ctx, retry.SharedHold{}) // decide alone until it answers
			}
			continue
		}
		if failing > 0 {
			f.log.Info("fleet rate: NATS KV answers again", zap.Int("failures", failing))
			failing = 0
		}
		f.follow(ctx, f.hold.View(f.cfg.Name))
	}
}

// follow gives the follower the hold view v when it changed.
func (f *Fleet) follow(ctx context.Context, v retry.SharedHold) {
	if f.follower == nil || v == f.view {
		return
	}
	f.view = v
	f.follower.Follow(ctx, f.cfg.Region, v)
}

// takeEvents returns the hold events reported since the last sync.
func (f *Fleet) takeEvents() []retry.HoldEvent {
	f.evMu.Lock()
	defer f.evMu.Unlock()
	ev := f.events
	f.events = nil
	return ev
}

// restoreEvents puts back events a failed sync did not apply, ahead of newer ones.
func (f *Fleet) restoreEvents(ev []retry.HoldEvent) {
	if len(ev) == 0 {
		return
	}
	f.evMu.Lock()
	defer f.evMu.Unlock()
	f.events = append(ev, f.events...)
}

// sync reads the fleet's state, applies this replica's beat, measure and the cut or
// raise it calls for with a compare-and-set (retried on a conflict), and sets the share.
func (f *Fleet) sync(ctx context.Context, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	throttled := f.throttled.Swap(false)
	succeeded := f.succeeded.Swap(0)
	bound := f.cfg.Pacer.Bound() || f.bound
	f.bound = false
	events := f.takeEvents()
	if throttled {
		f.lastThrott = now
	}
	f.beat++
	waiting := f.follower != nil && f.follower.Waiting(f.cfg.Region)
	for range 5 {
		st, rev, err := f.read(ctx)
		if err != nil {
			f.restore(throttled, succeeded)
			f.restoreEvents(events)
			f.bound = bound
			return err
		}
		f.observe(st, now)
		next := f.decide(st, now, throttled, succeeded > 0, bound)
		next.Hold = retry.NextHold(st.Hold, retry.HoldInput{
			Me: f.cfg.Name, Events: events,
			Alive: func(name string) bool { _, ok := st.Replicas[name]; return ok && f.alive(name, now, 3) },
			Waiting: func(name string) bool {
				if name == f.cfg.Name {
					return waiting
				}
				return st.Replicas[name].Waiting
			},
		})
		next.Replicas = maps.Clone(st.Replicas)
		if next.Replicas == nil {
			next.Replicas = map[string]fleetReplica{}
		}
		admittedRate, succeededRate := f.cfg.Pacer.Rates()
		next.Replicas[f.cfg.Name] = fleetReplica{
			Beat: f.beat, Admitted: admittedRate, Succeeded: succeededRate, Waiting: waiting, Bound: bound,
		}
		for name := range next.Replicas {
			if name != f.cfg.Name && !f.alive(name, now, 20) {
				delete(next.Replicas, name) // gone for long: forget it
			}
		}
		val, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = f.kv.Create(ctx, f.key, val)
		} else {
			_, err = f.kv.Update(ctx, f.key, val, rev)
		}
		if err == nil {
			f.apply(next, now)
			return nil
		}
		if !isConflict(err) {
			f.restore(throttled, succeeded)
			f.restoreEvents(events)
			f.bound = bound
			return err
		}
	}
	f.restore(throttled, succeeded)
	f.restoreEvents(events)
	f.bound = bound
	return errors.New("fleet: state changed under every try")
}

// restore puts back what a failed sync did not apply.
func (f *Fleet) restore(throttled bool, succeeded int64) {
	if throttled {
		f.throttled.Store(true)
	}
	f.succeeded.Add(succeeded)
}

func (f *Fleet) read(ctx context.Context) (fleetState, uint64, error) {
	e, err := f.kv.Get(ctx, f.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return fleetState{Rate: f.cfg.Policy.Start()}, 0, nil
	case err != nil:
		return fleetState{}, 0, err
	}
	var st fleetState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// Not ours, or from an incompatible version: start afresh over it.
		return fleetState{Rate: f.cfg.Policy.Start()}, e.Revision(), nil //nolint:nilerr // overwritten below
	}
	return st, e.Revision(), nil
}

// observe notes the other replicas' beats and whether the fleet's rate changed.
func (f *Fleet) observe(st fleetState, now time.Time) {
	f.reads++
	for name, r := range st.Replicas {
		if s, ok := f.seen[name]; !ok || s.beat != r.Beat {
			f.seen[name] = seenBeat{beat: r.Beat, at: now, read: f.reads}
		}
	}
	f.see(st.Rate, now)
}

// see notes a rate this replica read or wrote.
func (f *Fleet) see(r retry.FleetRate, now time.Time) {
	if r == f.rate {
		return
	}
	if r.Limit > 0 && (f.rate.Limit <= 0 || r.Limit < f.rate.Limit) {
		f.cutAt = now
	}
	if ce := f.log.Check(zap.DebugLevel, "fleet rate changed"); ce != nil {
		ce.Write(zap.String("region", f.cfg.Region), zap.Float64("limit", r.Limit), zap.Float64("was", f.rate.Limit),
			zap.Float64("ceiling", r.Ceiling), zap.Float64("met", r.Met), zap.Bool("slow_start", r.Slow))
	}
	f.rate, f.rateAt = r, now
}

// alive reports whether replica name beat within periods of this replica's periods,
// or within as many of this replica's reads: a replica that could not read the state
// for a while (a KV leader election) does not judge the others gone by its own outage.
// Counted alone, a reader's share would be the whole fleet's rate as the bucket comes
// back, until its next reads saw the others beat.
func (f *Fleet) alive(name string, now time.Time, periods int) bool {
	if name == f.cfg.Name {
		return true
	}
	s, ok := f.seen[name]
	return ok && (now.Sub(s.at) <= time.Duration(periods)*f.cfg.Period || f.reads-s.read <= uint64(periods)) //nolint:gosec // periods > 0
}

// decide returns the state with the cut or raise this replica's reports call for. A
// raise needs a limit that binds (bound here or at another live replica): a limit far
// above what the fleet sends says nothing about the quota, and climbing it for ever
// (26 000 req/s was seen) would let the next burst through unpaced.
func (f *Fleet) decide(st fleetState, now time.Time, throttled, succeeded, bound bool) fleetState {
	p := f.cfg.Policy
	// A cap changed by configuration (a rolled-out --rate-limit) replaces the old one.
	if st.Rate.Cap != p.Cap {
		st.Rate = p.Start()
	}
	changedAgo := now.Sub(f.rateAt)
	switch {
	case throttled && (f.cutAt.IsZero() || now.Sub(f.cutAt) >= p.Cooldown):
		// One cut per Cooldown, however many replicas saw the throttles of one
		// burst; a raise does not hold the next cut back.
		admitted, succeeded := f.measured(st, now)
		st.Rate = p.Cut(st.Rate, admitted, succeeded)
	case !throttled && succeeded && p.Raisable(st.Rate) && changedAgo >= p.RaiseAfter(st.Rate) &&
		now.Sub(f.lastThrott) >= p.Window && f.binds(st, now, bound):
		st.Rate = p.Raise(st.Rate)
	}
	return st
}

// binds reports whether the fleet's limit held a call back lately: here (bound) or at
// a live replica, as its last sync said.
func (f *Fleet) binds(st fleetState, now time.Time, bound bool) bool {
	if bound {
		return true
	}
	for name, r := range st.Replicas {
		if name != f.cfg.Name && r.Bound && f.alive(name, now, 3) {
			return true
		}
	}
	return false
}

// measured returns the fleet's admitted and successful call rates: the live replicas'
// own measures.
func (f *Fleet) measured(st fleetState, now time.Time) (admitted, succeeded float64) {
	admitted, succeeded = f.cfg.Pacer.Rates()
	for name, r := range st.Replicas {
		if name != f.cfg.Name && f.alive(name, now, 3) {
			admitted += r.Admitted
			succeeded += r.Succeeded
		}
	}
	return admitted, succeeded
}

// apply sets this replica's share from the state it just wrote.
func (f *Fleet) apply(st fleetState, now time.Time) {
	f.see(st.Rate, now)
	f.hold = st.Hold
	live := 0
	for name := range st.Replicas {
		if f.alive(name, now, 3) {
			live++
		}
	}
	// Every sync, not only on a change: the pacer cuts its own rate at a throttle,
	// and the fleet's share replaces that at the next sync.
	f.share, f.live = st.Rate.Share(live), live
	f.cfg.Pacer.SetShare(f.share)
}

// leave removes this replica from the state, so the others count it gone at once.
func (f *Fleet) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for range 3 {
		st, rev, err := f.read(ctx)
		if err != nil || rev == 0 {
			return
		}
		if _, ok := st.Replicas[f.cfg.Name]; !ok {
			return
		}
		delete(st.Replicas, f.cfg.Name)
		if st.Hold != nil && st.Hold.Prober == f.cfg.Name {
			st.Hold.Prober = "" // the next replica to sync probes for the fleet
		}
		val, err := json.Marshal(st)
		if err != nil {
			return
		}
		if _, err := f.kv.Update(ctx, f.key, val, rev); err == nil || !isConflict(err) {
			return
		}
	}
}

// isConflict reports a compare-and-set lost to another writer: the key was created or
// updated meanwhile (JetStream's wrong-last-sequence, 10071, or the KV's revision
// mismatch, 10164).
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == 10164)
}
