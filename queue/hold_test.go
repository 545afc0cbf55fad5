package queue_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// follower records the hold views a Fleet gives and says it has requests
// waiting.
type follower struct {
	mu      sync.Mutex
	view    retry.SharedHold
	waiting bool
}

func (f *follower) Follow(_ context.Context, _ string, v retry.SharedHold) {
	f.mu.Lock()
	f.view = v
	f.mu.Unlock()
}

func (f *follower) Waiting(string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}

func (f *follower) get() retry.SharedHold {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

// joinWatched joins c's fleet as name with a follower and runs it until the
// returned stop.
func joinWatched(t *testing.T, c *queue.Conn, name string) (*queue.Fleet, *follower, func()) {
	t.Helper()
	f, err := c.Fleet(context.Background(), queue.FleetConfig{
		Name: name, Policy: retry.FleetPolicyOf(retry.LimiterConfig{Rate: 100}), Period: 20 * time.Millisecond, Pacer: &pacer{},
	})
	require.NoError(t, err)
	fw := &follower{waiting: true}
	f.Watch(fw)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return f, fw, stop
}

func waitView(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling another goroutine's state
	}
}

// A breaker opened by one replica holds the others within a sync, with that
// one probing; when it leaves, exactly one of the others takes the probe; its
// close clears the hold for all. A replica that cannot read the bucket any
// more decides alone.
func TestFleetSharesAHold(t *testing.T) {
	c := adminConn(t)
	a, fa, stopA := joinWatched(t, c, "a")
	b, fb, _ := joinWatched(t, c, "b")
	cc, fc, _ := joinWatched(t, c, "c")
	waitView(t, "every replica reads the fleet", func() bool { return fa.get().Known && fb.get().Known && fc.get().Known })

	a.Report(retry.HoldEvent{Kind: retry.HoldBreaker, Held: true, Reason: "most API calls fail"})
	held := func(f *follower, probe bool) func() bool {
		return func() bool {
			v := f.get()
			return v.Known && v.Kind == retry.HoldBreaker && v.Reason == "most API calls fail" && v.Probe == probe
		}
	}
	waitView(t, "a probes", held(fa, true))
	waitView(t, "b follows", held(fb, false))
	waitView(t, "c follows", held(fc, false))

	stopA()
	waitView(t, "one of b and c probes", func() bool { return fb.get().Probe != fc.get().Probe })
	prober, other := b, fc
	if fc.get().Probe {
		prober, other = cc, fb
	}
	require.Equal(t, retry.HoldBreaker, other.get().Kind, "the other still follows")

	// The prober's probe passed: nobody is held.
	prober.Report(retry.HoldEvent{Kind: retry.HoldBreaker})
	waitView(t, "b resumes", func() bool { return fb.get() == retry.SharedHold{Known: true} })
	waitView(t, "c resumes", func() bool { return fc.get() == retry.SharedHold{Known: true} })

	// The bucket gone (as unreachable): the view turns unknown, each decides alone.
	require.NoError(t, c.JS.DeleteKeyValue(context.Background(), queue.Config{}.WithDefaults().Stream+"_RATE"))
	waitView(t, "b decides alone", func() bool { return !fb.get().Known })
}

// maxPacer records the highest share it was given since reset, and how many.
type maxPacer struct {
	pacer
	top  float64
	sets int
}

func (p *maxPacer) SetShare(r float64) {
	p.pacer.SetShare(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sets++
	if r == 0 {
		r = math.Inf(1) // no limit
	}
	p.top = max(r, p.top)
}

func (p *maxPacer) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.top = 0
	return p.sets
}

func (p *maxPacer) get() (top float64, sets int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.top, p.sets
}

// When every replica loses the bucket for a while (a KV leader election in
// a cluster), none of them counts the others gone by its own outage: the
// first to read the state again sees their beats unchanged since before it,
// and counting itself alone it would pace to the whole fleet's rate.
func TestFleetOutageKeepsTheShares(t *testing.T) {
	c := adminConn(t)
	px := testenv.NewProxy(t, strings.TrimPrefix(c.NC.ConnectedUrl(), "nats://"))
	policy := retry.FleetPolicyOf(retry.LimiterConfig{Rate: 90})
	pacers := make([]*maxPacer, 3)
	for i := range pacers {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := queue.Connect(ctx, queue.Config{URL: px.URL()})
		cancel()
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close(time.Second) })
		pacers[i] = &maxPacer{}
		f, err := conn.Fleet(context.Background(), queue.FleetConfig{Name: fmt.Sprint("r", i), Policy: policy, Period: 500 * time.Millisecond, Pacer: pacers[i]})
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	for _, p := range pacers {
		waitShare(t, &p.pacer, 30, "three replicas share 90")
	}
	px.Block()
	before := make([]int, len(pacers))
	for i, p := range pacers {
		before[i] = p.reset()
	}
	// The outage: six sync periods. The clients reconnect within a second
	// or so of each other (reconnect waits with jitter), under the three
	// periods after which a replica silent while this one reads is gone.
	outage := time.NewTimer(3 * time.Second)
	<-outage.C
	px.Unblock()
	for i, p := range pacers {
		waitView(t, fmt.Sprint("replica ", i, " syncs again"), func() bool { _, sets := p.get(); return sets >= before[i]+4 })
	}
	for i, p := range pacers {
		top, _ := p.get()
		require.InDelta(t, 30, top, 1e-9, "replica %d's highest share after the outage", i)
	}
}
