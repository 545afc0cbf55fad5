package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// pacer records the shares a Fleet gives and reports fixed rates.
type pacer struct {
	mu                  sync.Mutex
	share               float64
	admitted, succeeded float64
	idle                bool // the share never holds a call back
}

func (p *pacer) SetShare(r float64) {
	p.mu.Lock()
	p.share = r
	p.mu.Unlock()
}

func (p *pacer) Rates() (float64, float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admitted, p.succeeded
}

// Bound says the share binds (a drain the API's quota limits) unless idle.
func (p *pacer) Bound() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.idle
}

func (p *pacer) setIdle(idle bool) {
	p.mu.Lock()
	p.idle = idle
	p.mu.Unlock()
}

func (p *pacer) get() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.share
}

// joinFleet joins c's fleet as name and runs it until the returned stop.
func joinFleet(t *testing.T, c *queue.Conn, name string, policy retry.FleetPolicy) (*queue.Fleet, *pacer, func()) {
	t.Helper()
	p := &pacer{admitted: 60, succeeded: 50}
	f, err := c.Fleet(context.Background(), queue.FleetConfig{Name: name, Policy: policy, Period: 20 * time.Millisecond, Pacer: p})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return f, p, stop
}

func waitShare(t *testing.T, p *pacer, want float64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.get() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: share %v, want %v", what, p.get(), want)
		}
		time.Sleep(5 * time.Millisecond) // polling another goroutine's state
	}
}

// Replicas split the fleet's cap evenly; one that leaves gives its share
// back at once; a throttle seen by one cuts the rate of all.
func TestFleetSharesTheRate(t *testing.T) {
	c := adminConn(t)
	policy := retry.FleetPolicyOf(retry.LimiterConfig{Rate: 120, Cooldown: time.Hour, Window: time.Hour})
	a, pa, _ := joinFleet(t, c, "a", policy)
	_, pb, stopB := joinFleet(t, c, "b", policy)
	waitShare(t, pa, 60, "a, with b")
	waitShare(t, pb, 60, "b, with a")
	_, pc, _ := joinFleet(t, c, "c", policy)
	require.Equal(t, 40.0, pc.get(), "a replica joins at its share of the fleet's rate")
	waitShare(t, pa, 40, "a, with b and c")

	stopB()
	waitShare(t, pa, 60, "a, after b left")
	waitShare(t, pc, 60, "c, after b left")

	// The fleet sends 120/s when a throttles: under the cap, a tenth off.
	a.Throttled()
	waitShare(t, pc, 54, "c, after a's throttle")
	waitShare(t, pa, 54, "a, after its throttle")
}

// A replica that stops beating (killed, partitioned) stops being counted
// after a few periods, without any clock compared between replicas.
func TestFleetForgetsASilentReplica(t *testing.T) {
	c := adminConn(t)
	policy := retry.FleetPolicyOf(retry.LimiterConfig{Rate: 100})
	_, pa, _ := joinFleet(t, c, "a", policy)
	// b joins and then never runs: as a replica SIGKILLed right after joining.
	_, err := c.Fleet(context.Background(), queue.FleetConfig{Name: "b", Policy: policy, Period: 20 * time.Millisecond, Pacer: &pacer{}})
	require.NoError(t, err)
	waitShare(t, pa, 50, "a, counting b")
	waitShare(t, pa, 100, "a, once b is silent")
}

// An open fleet (no --rate-limit) of several replicas starts slow, not
// unlimited: its rate doubles while it binds, and a rate that binds nowhere
// does not climb. A lone replica in slow start has no limit.
func TestOpenFleetStartsSlow(t *testing.T) {
	c := adminConn(t)
	policy := retry.FleetPolicyOf(retry.LimiterConfig{Window: 200 * time.Millisecond})
	a, pa, _ := joinFleet(t, c, "a", policy)
	require.Zero(t, pa.get(), "alone: no limit")
	pa.setIdle(true)
	b, err := c.Fleet(context.Background(), queue.FleetConfig{Name: "b", Policy: policy, Period: 20 * time.Millisecond, Pacer: &pacer{idle: true}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitShare(t, pa, retry.DefaultFleetStart/2, "two replicas share the slow start")

	// Successes, but the share holds nothing back: no raise.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range 100 { // half a second: many raise windows
		<-tick.C
		a.Succeeded()
		b.Succeeded()
	}
	require.Equal(t, retry.DefaultFleetStart/2.0, pa.get(), "a limit that binds nowhere does not climb")

	pa.setIdle(false)
	deadline := time.Now().Add(10 * time.Second)
	for pa.get() < 4*retry.DefaultFleetStart {
		require.True(t, time.Now().Before(deadline), "slow start doubles while it binds: share %v", pa.get())
		<-tick.C
		a.Succeeded()
	}
}
