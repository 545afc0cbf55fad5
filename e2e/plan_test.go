//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The faults the soak draws from (issue 15). Process faults are performed
// one at a time (a NATS node is back and healthy before the next fault of
// that lane), API faults on a lane of their own, so the two overlap at
// random.
const (
	faultWorkerKill   = "worker_sigkill"      // SIGKILL a worker, restart it after dur
	faultWorkerTerm   = "worker_sigterm"      // SIGTERM a worker (it must exit 0), restart it after dur
	faultWorkerStop   = "worker_sigstop"      // SIGSTOP a worker for dur, then SIGCONT
	faultNATSKill     = "nats_kill"           // SIGKILL a NATS node, restart it after dur (same store)
	faultBlackhole    = "net_blackhole"       // hold every byte between a worker and NATS for dur
	faultReset        = "net_reset"           // RST every connection between a worker and NATS
	faultAPIOutage    = "api_outage"          // every recover answers 503 for dur
	faultUnauthorized = "api_401_window"      // every recover answers 401 APIG.0301 for dur
	faultRoute404     = "api_route404_window" // every request answers 404 APIG.0101 for dur
	faultThrottle     = "api_throttle_storm"  // 60% of recovers answer 429 for dur
	faultSlow         = "api_latency_over_ackwait"
)

var (
	processFaults = []string{faultWorkerKill, faultWorkerTerm, faultWorkerStop, faultNATSKill, faultBlackhole, faultReset}
	apiFaults     = []string{faultAPIOutage, faultUnauthorized, faultRoute404, faultThrottle, faultSlow}
)

// fault is one planned fault: what, on which worker or node, when (from
// the start of the run) and for how long.
type fault struct {
	kind   string
	target int
	at     time.Duration
	dur    time.Duration
}

func (f fault) String() string {
	s := f.kind
	switch f.kind {
	case faultWorkerKill, faultWorkerTerm, faultWorkerStop, faultBlackhole, faultReset:
		s += fmt.Sprintf(" w%d", f.target+1)
	case faultNATSKill:
		s += fmt.Sprintf(" n%d", f.target+1)
	}
	if f.dur > 0 {
		s += fmt.Sprintf(" for %s", f.dur.Round(10*time.Millisecond))
	}
	return s
}

// faultRange is how long each kind of fault lasts, as multiples of
// AckWait where AckWait is what matters.
func faultRange(kind string) (lo, hi time.Duration) {
	switch kind {
	case faultWorkerKill:
		return 0, 3 * time.Second
	case faultWorkerTerm:
		return 0, 2 * time.Second
	case faultWorkerStop:
		return ackWait / 2, 3 * ackWait
	case faultNATSKill:
		return time.Second, 10 * time.Second
	case faultBlackhole:
		return time.Second, 20 * time.Second // some longer than AckWait, some than the client's stale-connection limit
	case faultReset:
		return 0, 0
	case faultAPIOutage:
		return 2 * time.Second, 25 * time.Second
	case faultUnauthorized, faultRoute404:
		return time.Second, 8 * time.Second
	case faultThrottle:
		return 2 * time.Second, 12 * time.Second
	case faultSlow:
		return 3 * time.Second, 12 * time.Second
	}
	panic("unknown fault " + kind)
}

// drawPlan draws the faults of a run of length d from seed: the same seed
// and length give the same plan. Faults of one lane never overlap; a gap
// of 1-6 s follows each. workers and nodes are how many there are to pick
// from.
func drawPlan(seed uint64, d time.Duration, workers, nodes int) []fault {
	r := rand.New(rand.NewPCG(seed, 0xfa017))
	var plan []fault
	for _, lane := range [][]string{processFaults, apiFaults} {
		at := 3*time.Second + time.Duration(r.Int64N(int64(3*time.Second)))
		for at < d {
			kind := lane[r.IntN(len(lane))]
			lo, hi := faultRange(kind)
			f := fault{kind: kind, at: at, dur: lo}
			if hi > lo {
				f.dur += time.Duration(r.Int64N(int64(hi - lo)))
			}
			switch kind {
			case faultNATSKill:
				f.target = r.IntN(nodes)
			case faultWorkerKill, faultWorkerTerm, faultWorkerStop, faultBlackhole, faultReset:
				f.target = r.IntN(workers)
			}
			plan = append(plan, f)
			at += f.dur + time.Second + time.Duration(r.Int64N(int64(5*time.Second)))
		}
	}
	slices.SortStableFunc(plan, func(a, b fault) int { return int(a.at - b.at) })
	return plan
}

// TestDrawPlan: a seed replays its plan, another seed draws another, every
// kind of fault is drawn in a long run, and a lane's faults never overlap.
func TestDrawPlan(t *testing.T) {
	a := drawPlan(42, 30*time.Minute, 3, 3)
	require.Equal(t, a, drawPlan(42, 30*time.Minute, 3, 3))
	require.NotEqual(t, a, drawPlan(43, 30*time.Minute, 3, 3))
	kinds := map[string]int{}
	laneEnd := map[bool]time.Duration{}
	for _, f := range a {
		kinds[f.kind]++
		process := slices.Contains(processFaults, f.kind)
		require.GreaterOrEqual(t, f.at, laneEnd[process], "%s starts before the previous fault of its lane ends", f)
		laneEnd[process] = f.at + f.dur
		lo, hi := faultRange(f.kind)
		require.True(t, f.dur >= lo && (f.dur <= hi || hi == lo), "%s: duration out of range", f)
	}
	for _, k := range append(slices.Clone(processFaults), apiFaults...) {
		require.Positive(t, kinds[k], "a 30-minute plan never draws %s", k)
	}
}
