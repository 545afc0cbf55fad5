package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
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
	outageAt  float64 // the outage starts at this fraction of the ideal drain without it
	outageFor time.Duration
	// The fleet.
	rateLimit float64 // --rate-limit of every worker (fleet-wide through NATS KV)
	replicas  int     // workers at the start (0 = 1)
	changes   []change
	// naive: the naive peer can run it too (one process; it has no knob
	// the scenario varies).
	naive bool
	// once: one run whatever -repeat (a million requests take minutes, and
	// the figure it is for, peak RSS, does not vary by run).
	once bool
	want target
}

// changeKind is what happens to the fleet at a change.
type changeKind int

const (
	scaleUp   changeKind = iota // start count workers
	scaleDown                   // SIGTERM the count newest
	restart                     // SIGTERM the oldest and start one at once (a rolling restart's step)
	crash                       // SIGKILL the oldest and start one at once
)

// change is a step of the fleet during the drain, at a time from its start:
// at (from the outage's start with inOutage), or when at is zero, frac of
// the ideal drain time.
type change struct {
	at       time.Duration
	inOutage bool
	frac     float64
	kind     changeKind
	count    int
}

// target is what SPEC.md's Targets ask of a scenario. Every scenario must
// also lose nothing, dead-letter nothing unexpected and stay under 64 MiB
// RSS per worker at concurrency 64.
type target struct {
	minRatio float64 // ideal/actual at least this (0: no bound)
	max429   float64 // 429 share of calls below this (0: no bound)
}

func (s scenario) workers() int { return max(1, s.replicas) }

// ideal is the drain time the API allows: N·L/(C·replicas) when
// latency-bound; under a quota of R calls/s, the time it takes to answer
// the calls it must answer, N/(R·(1−e)) with a share e of calls answered
// 500 (each spends quota and needs another call); plus an outage's length
// (nothing can progress during it).
func (s scenario) ideal(c int) time.Duration {
	d := time.Duration(float64(s.n) * float64(s.latency) / float64(c*s.workers()))
	if s.quota > 0 {
		d = max(d, time.Duration(float64(s.n)/(s.quota*(1-s.errorRate))*float64(time.Second)))
	}
	return d + s.outageFor
}

// outageStart is when the outage starts, from the drain's start.
func (s scenario) outageStart(c int) time.Duration {
	return time.Duration(s.outageAt * float64(s.ideal(c)-s.outageFor))
}

// plan returns the changes with their times resolved, in time order.
func (s scenario) plan(c int) []change {
	out := make([]change, len(s.changes))
	for i, ch := range s.changes {
		switch {
		case ch.inOutage:
			ch.at += s.outageStart(c)
		case ch.at == 0:
			ch.at = time.Duration(ch.frac * float64(s.ideal(c)))
		}
		out[i] = ch
	}
	slices.SortStableFunc(out, func(a, b change) int { return cmp.Compare(a.at, b.at) })
	return out
}

// fleet describes the workers, e.g. "1", "3", "1→3→1".
func (s scenario) fleet() string {
	n := s.workers()
	parts := []string{fmt.Sprint(n)}
	for _, c := range s.changes {
		switch c.kind {
		case scaleUp:
			n += c.count
		case scaleDown:
			n -= c.count
		default:
			continue
		}
		parts = append(parts, fmt.Sprint(n))
	}
	return strings.Join(parts, "→")
}

// The error mix of the quota scenarios: a bulk recovery after an outage
// meets jobs that are gone (404), a few it may not touch (403) and a busy
// backend (500).
const (
	mixErrors    = 0.05
	mixNotFound  = 0.02
	mixForbidden = 0.01
	quotaRate    = 300
)

func scenarios() []scenario {
	const rolling = 40 * time.Second
	restarts := make([]change, 6)
	for i := range restarts {
		// Six rolling restarts spread over the outage.
		restarts[i] = change{at: rolling * time.Duration(i+1) / 7, inOutage: true, kind: restart, count: 1}
	}
	quota := func(name, desc string, replicas int, rateLimit float64, want target, changes ...change) scenario {
		return scenario{name: name, desc: desc, n: 6000, latency: 20 * time.Millisecond,
			errorRate: mixErrors, notFound: mixNotFound, forbidden: mixForbidden, quota: quotaRate,
			rateLimit: rateLimit, replicas: replicas, changes: changes, want: want}
	}
	withLimit := target{minRatio: 1 / 1.05, max429: 0.01}
	adaptive := target{minRatio: 1 / 1.15, max429: 0.03}
	return []scenario{
		{name: "zero", desc: "zero API latency: the worker's own overhead (not a realistic setting)", n: 20000, naive: true},
		{name: "latency", desc: "50 ms API latency, concurrency 64: ideal N·L/C", n: 5000, latency: 50 * time.Millisecond,
			naive: true, want: target{minRatio: 0.95}},
		quota("quota", "API admits 300 req/s (429 above), --rate-limit 300; 20 ms, 5% 500s, 2% 404, 1% 403 jobs", 1, quotaRate, withLimit),
		quota("quota-adaptive", "as quota, without --rate-limit (the adaptive rate alone)", 1, 0, adaptive),
		quota("fleet-quota", "as quota with 3 replicas sharing --rate-limit 300 (NATS KV)", 3, quotaRate, withLimit),
		quota("fleet-adaptive", "as quota-adaptive with 3 replicas", 3, 0, adaptive),
		quota("fleet-scale", "as quota, scaled 1 → 3 → 1 replicas during the drain (at 1/3 and 2/3 of the ideal)", 1, quotaRate, withLimit,
			change{frac: 1.0 / 3, kind: scaleUp, count: 2}, change{frac: 2.0 / 3, kind: scaleDown, count: 2}),
		{name: "outage", desc: "8 s API outage (503) from half-way through a 20 ms drain; ideal N·L/C + 8 s", n: 3000,
			latency: 20 * time.Millisecond, outageAt: 0.5, outageFor: 8 * time.Second},
		{name: "rolling-outage", desc: "3 replicas, 50 ms, 40 s API outage (503) from a third of the drain, six rolling restarts (SIGTERM one, start one) in it",
			n: 6000, latency: 50 * time.Millisecond, outageAt: 1.0 / 3, outageFor: rolling, replicas: 3, changes: restarts},
		{name: "backlog", desc: "a million requests waiting before the worker starts, zero latency: memory stays flat (SPEC: under 64 MiB RSS over a million-request backlog)",
			n: 1_000_000, once: true},
		{name: "sigkill", desc: "50 ms drain, the worker SIGKILLed at 2 s and a new one started at once; ideal N·L/C", n: 5000,
			latency: 50 * time.Millisecond, changes: []change{{at: 2 * time.Second, kind: crash, count: 1}}},
	}
}
