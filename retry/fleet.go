package retry

import "time"

// FleetRate is the API rate the whole fleet of replicas may use: learned together from
// every replica's throttles and successes (AIMD) and shared through NATS KV by package
// queue. Each replica paces its calls to its share, Limit divided by the live replicas, so
// a throttle seen by one slows all, a new replica starts at the fleet's current rate, and
// adding replicas never adds load beyond what the fleet learned. The zero value is "no
// limit yet". FleetRate and FleetPolicy are pure: no I/O, no clock.
type FleetRate struct {
	// Limit is the fleet's rate in req/s; 0 means none (no cap and no throttle yet).
	Limit float64 `json:"limit,omitempty"`
	// Ceiling is the rate at which the fleet was last throttled (or the cap before any
	// throttle): raises climb back to it quickly, then probe above it slowly. 0 before
	// either.
	Ceiling float64 `json:"ceiling,omitempty"`
	// Cap is the --rate-limit the rate was learned under; 0 = none. A fleet whose
	// configured cap changes (a rollout) starts again from the new one.
	Cap float64 `json:"cap,omitempty"`
	// Probe is the share of the limit the next raise above the ceiling adds: it starts
	// at 3 % and doubles with each such raise (up to 100 %), and a cut resets it. 0 = 3 %.
	Probe float64 `json:"probe,omitempty"`
	// Met is the limit at which the fleet was last throttled (0 before): probing above
	// the ceiling stays gentle (probeStep a raise) up to a quarter over it, where the
	// quota was last met; only past that does the step double.
	Met float64 `json:"met,omitempty"`
	// Slow: an open fleet (no cap) that has not been throttled yet, in slow start: its
	// limit doubles with each raise while the limit binds, and the first cut ends it.
	Slow bool `json:"slow,omitempty"`
}

// Share returns the rate of one of replicas live replicas (at least 1); 0 means no limit.
// A lone replica in slow start has no limit: alone, its own first throttles cut the
// rate within its round trip to the API (the calls it has in flight are the whole
// fleet's), and a limit would only slow a latency-bound drain.
func (r FleetRate) Share(replicas int) float64 {
	if r.Limit <= 0 || r.Slow && replicas <= 1 {
		return 0
	}
	return r.Limit / float64(max(replicas, 1))
}

// FleetPolicy turns throttles and successes into fleet rates, as the Limiter does for one
// process. Build it with LimiterConfig.Fleet's defaults (FleetPolicyOf).
type FleetPolicy struct {
	Cap      float64       // the configured --rate-limit for the fleet; 0 = none
	Min      float64       // floor of a cut
	Decrease float64       // multiplicative decrease, in (0, 1)
	Increase float64       // req/s added per Window; 0 = a twentieth of the ceiling
	Window   time.Duration // least time between raises
	Cooldown time.Duration // least time between cuts
	// Open is where an open fleet (no cap) of several replicas starts: in slow start,
	// doubling while the limit binds, until the first throttle. 0 = DefaultFleetStart.
	Open float64
}

// DefaultFleetStart is an open fleet's first rate, in req/s. Without it replicas
// started together send unlimited until the first cut reaches each of them (a sync
// period): with three replicas of 64 calls each that burst alone drew 8 % of a drain's
// calls as 429s (docs/performance.md). Slow start doubles it each quarter of a Window
// while it binds, so a fleet whose API has no quota reaches thousands a second within
// two.
const DefaultFleetStart = 100

// FleetPolicyOf returns the fleet policy of a Limiter configured by cfg (Rate is the
// fleet's cap), with cfg's defaults applied.
func FleetPolicyOf(cfg LimiterConfig) FleetPolicy {
	cfg = cfg.withDefaults()
	return FleetPolicy{Cap: cfg.Rate, Min: cfg.Min, Decrease: cfg.Decrease, Increase: cfg.Increase,
		Window: cfg.Window, Cooldown: cfg.Cooldown}
}

// Start is the fleet's rate before anything was learned: the cap, or an open
// fleet's start in slow start.
func (p FleetPolicy) Start() FleetRate {
	if p.Cap > 0 {
		return FleetRate{Limit: p.Cap, Ceiling: p.Cap, Cap: p.Cap}
	}
	start := p.Open
	if start <= 0 {
		start = DefaultFleetStart
	}
	return FleetRate{Limit: start, Ceiling: start, Slow: true}
}

// RaiseAfter is the least time between raises of r: a quarter of a Window in slow
// start (time for a doubling's throttles to come back: the API's own burst absorbs the
// first excess calls), else a Window.
func (p FleetPolicy) RaiseAfter(r FleetRate) time.Duration {
	if r.Slow {
		return p.Window / 4
	}
	return p.Window
}

// Cut lowers r after a throttle. admitted and served are the fleet's measured rates
// (the sums of the replicas' own; served: answered otherwise than with a throttle), 0 if
// unknown. The cut starts from the limit (without one, from what the fleet sent) and goes
// no lower than just under the rate the API demonstrably served, so an occasional
// throttle at the quota dents the rate instead of halving it; a slow start, which
// overshoots by design, goes back to just under that rate at once. The ceiling becomes
// where the quota was met: the rate the API served, or without a measure (and at an
// unlimited fleet's first cut) the rate the cut started from; with a cap, the cap.
func (p FleetPolicy) Cut(r FleetRate, admitted, served float64) FleetRate {
	cur := r.Limit
	if cur <= 0 || r.Slow && admitted > cur {
		cur = admitted // no limit yet (or a lone replica's): start from what the fleet sent
	}
	if cur <= 0 {
		cur = p.Min
	}
	decrease := p.Decrease
	if p.Cap > 0 {
		// Under the operator's cap a throttle is a burst that met the quota, not a
		// wrong estimate of it: a tenth off, repeated each Cooldown while it persists
		// (a floor at what the API served made it a few percent, and the fleet stayed
		// on the quota's edge).
		decrease = max(decrease, capDecrease)
	}
	next, ceiling, met := cur*decrease, cur, cur
	if served > 0 && served < cur && p.Cap <= 0 {
		next = max(next, servedShare*served)
		if r.Slow {
			// A slow start doubles past the quota before its first throttle comes
			// back (a doubling's throttles take longer than a raise to answer): the
			// limit two doublings back is the last that surely met no throttle,
			// unless the API demonstrably served more (its measures still span the
			// idle time before the drain began).
			next = max(cur/4, servedShare*served)
			met = max(cur/2, served)
			ceiling = met
		}
		if r.Limit > 0 && !r.Slow {
			// Where the quota was met: what the API served. Not at the first cut of
			// an unlimited fleet or a slow start, whose measures began with a ramp.
			ceiling = served
		}
	}
	if p.Cap > 0 {
		ceiling = p.Cap // the operator's word for the quota: climb back to it quickly
	}
	return FleetRate{Limit: max(next, p.Min), Ceiling: max(ceiling, p.Min), Cap: p.Cap, Met: met}
}

// servedShare keeps a cut just under the rate the API served: at exactly that rate the
// replicas' independent pacing bunches calls over the quota now and then, and each
// bunch is a throttle.
const servedShare = 0.97

// metOver bounds the gentle probing above where the quota was last met: past it the
// quota has evidently grown (or the throttles were a storm's), and the step doubles.
const metOver = 1.25

// capDecrease is the least multiplicative decrease of a capped fleet.
const capDecrease = 0.9

// probeStep is the share of the limit the first raise above the ceiling adds: the fleet
// probes for more quota gently, so the next throttle finds it only a little over. Each
// further raise without a throttle doubles the step (up to the whole limit), so a fleet
// that a throttle storm cut to the floor is back at full speed within seconds of the storm
// ending, not minutes (at a fixed 3 % of a collapsed ceiling a soak's fleet took over two
// minutes to climb from 1 req/s back to 25).
const probeStep = 0.03

// Raise adds to r after a Window of successes without a throttle (the caller raises
// only a limit that binds: one that admitted calls late): half the way back to the
// ceiling (at least Increase, default a twentieth of it), then, above it, r.Probe of the
// limit (3 % first, doubling with each raise until a cut), never above the cap. In slow
// start it doubles the limit. No limit stays no limit.
func (p FleetPolicy) Raise(r FleetRate) FleetRate {
	if r.Limit <= 0 {
		return r
	}
	if r.Slow {
		return FleetRate{Limit: 2 * r.Limit, Ceiling: 2 * r.Limit, Slow: true}
	}
	next, probe := r.Limit, 0.0
	if next < r.Ceiling {
		// Back toward where the quota was met, quickly: half the gap or Increase,
		// whichever is more.
		inc := p.Increase
		if inc <= 0 {
			inc = r.Ceiling / 20
		}
		next = min(next+max(inc, (r.Ceiling-next)/2), r.Ceiling)
	} else {
		step := max(r.Probe, probeStep)
		next += max(next*step, p.Min)
		probe = min(2*step, 1)
		if next < metOver*r.Met {
			// Near where the quota was last met: a throttle may come late (the
			// API's own burst absorbs the first excess calls), and doubling steps
			// meanwhile would overshoot by half (8 % of a fleet's calls were 429s).
			probe = probeStep
		}
	}
	if p.Cap > 0 && next >= p.Cap {
		return p.Start()
	}
	return FleetRate{Limit: next, Ceiling: max(r.Ceiling, next), Cap: p.Cap, Probe: probe, Met: r.Met}
}

// Raisable reports whether Raise would change r.
func (p FleetPolicy) Raisable(r FleetRate) bool {
	return r.Limit > 0 && (p.Cap <= 0 || r.Limit < p.Cap)
}

// HoldKind is what holds a region's calls for the whole fleet.
type HoldKind uint8

// Hold kinds, weakest first: a pause outranks an open breaker.
const (
	HoldNone    HoldKind = iota
	HoldBreaker          // the region's circuit breaker is open
	HoldPause            // the region is paused: credentials or configuration
)

// String is the kind as the fleet's KV value and the logs spell it.
func (k HoldKind) String() string {
	switch k {
	case HoldBreaker:
		return "breaker"
	case HoldPause:
		return "pause"
	default:
		return ""
	}
}

// MarshalText spells the kind as String does.
func (k HoldKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText wrote; an unknown kind (a newer
// version's) reads as a breaker, the hold every version knows how to probe.
func (k *HoldKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*k = HoldNone
	case "pause":
		*k = HoldPause
	default:
		*k = HoldBreaker
	}
	return nil
}

// FleetHold is a region's open breaker or pause as the fleet shares it (in the
// region's fleet KV key): every replica holds the region's calls, and only
// Prober sends probes, so the fleet probes as one replica would. A probe that
// succeeds anywhere clears it for all.
type FleetHold struct {
	Kind   HoldKind `json:"kind"`
	Reason string   `json:"reason,omitempty"`
	// Prober is the replica that probes for the fleet; "" = none yet (the next
	// replica to sync takes the role).
	Prober string `json:"prober"`
}

// HoldEvent is a change of one replica's own breaker or pause, reported to the
// fleet: Held when it opened or paused on its own answers, !Held when an answer
// closed or resumed it.
type HoldEvent struct {
	Kind   HoldKind
	Held   bool
	Reason string
}

// HoldInput is what a replica knows when it updates the fleet's hold of a region.
type HoldInput struct {
	// Me is this replica's name.
	Me string
	// Events are this replica's breaker and pause changes since its last
	// update, oldest first.
	Events []HoldEvent
	// Alive reports whether a replica beat within a few periods.
	Alive func(name string) bool
	// Waiting reports whether a replica has requests of the region waiting at
	// its gate: a probe needs one, so a prober with none hands the role to a
	// replica that has some.
	Waiting func(name string) bool
}

// NextHold returns the region's hold after a replica's update: its events in
// order (a replica that opens or pauses holds the fleet and probes for it, unless
// a hold as strong is on; a replica whose answer closed a breaker clears a
// breaker hold, one whose answer resumed a pause clears any hold, as the answer
// proved the API and the credentials good), then the prober's role taken over
// when its replica stopped beating or has nothing to probe with while this one
// has. nil means no hold.
func NextHold(cur *FleetHold, in HoldInput) *FleetHold {
	if cur != nil {
		c := *cur
		cur = &c
	}
	for _, e := range in.Events {
		switch {
		case e.Held && (cur == nil || cur.Kind < e.Kind):
			cur = &FleetHold{Kind: e.Kind, Reason: e.Reason, Prober: in.Me}
		case !e.Held && cur != nil && cur.Kind <= e.Kind:
			cur = nil
		}
	}
	if cur == nil || cur.Prober == in.Me {
		return cur
	}
	alive := cur.Prober != "" && in.Alive != nil && in.Alive(cur.Prober)
	idle := in.Waiting != nil && !in.Waiting(cur.Prober) && in.Waiting(in.Me)
	if !alive || idle {
		cur.Prober = in.Me
	}
	return cur
}

// SharedHold is a region's fleet hold as one replica follows it.
type SharedHold struct {
	// Known: the replica read the fleet's state lately. When false its breaker
	// and pause decide alone, as without a fleet (a KV outage never blocks).
	Known bool
	// Kind and Reason are the fleet's hold; HoldNone = none.
	Kind   HoldKind
	Reason string
	// Probe: this replica probes for the fleet.
	Probe bool
}

// View is h as replica me follows it (h nil: no hold).
func (h *FleetHold) View(me string) SharedHold {
	if h == nil {
		return SharedHold{Known: true}
	}
	return SharedHold{Known: true, Kind: h.Kind, Reason: h.Reason, Probe: h.Prober == me}
}
