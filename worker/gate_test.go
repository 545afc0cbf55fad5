package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// slowPauser is a consumer pauser whose NATS calls hang until released,
// as they do while JetStream elects a leader.
type slowPauser struct {
	release chan struct{}
	mu      sync.Mutex
	calls   []string
}

func (s *slowPauser) PauseConsumer(ctx context.Context, _ time.Time) error {
	return s.wait(ctx, "pause")
}

func (s *slowPauser) ResumeConsumer(ctx context.Context) error {
	return s.wait(ctx, "resume")
}

func (s *slowPauser) wait(ctx context.Context, what string) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.calls = append(s.calls, what)
	s.mu.Unlock()
	return nil
}

func (s *slowPauser) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// The fleet-wide pause is a NATS call made outside the gate's lock: while
// it hangs, readiness (state) and the other calls' records answer at once.
func TestGatePauseCallOutsideTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pauser := &slowPauser{release: make(chan struct{})}
		g := newGate(GateConfig{}, zap.NewNop(), pauser, nil, nil)
		ctx := t.Context()

		done := make(chan struct{})
		go func() {
			defer close(done)
			g.record(ctx, "", "job-a", retry.Unauthorized, "APIG.0301", notProbe)
		}()
		waitFor(t, func() bool { return g.state().Paused }, "paused")
		// Another call's answer and readiness do not wait for the NATS call.
		recorded := make(chan struct{})
		go func() {
			defer close(recorded)
			g.record(ctx, "", "job-b", retry.Transient, "", notProbe)
			_ = g.state()
		}()
		select {
		case <-recorded:
		case <-done:
			t.Fatal("the pause call returned before it was released")
		}
		require.Equal(t, "api rejected the credentials (401 APIG.0301)", g.state().PauseReason)
		close(pauser.release)
		<-done
		require.Equal(t, []string{"pause"}, pauser.got())
	})
}

// Decided in one order, applied in another: an older action never undoes a
// newer one, so a pause raced by its resume leaves the consumer resumed.
func TestGateStaleConsumerActionSkipped(t *testing.T) {
	pauser := &slowPauser{release: make(chan struct{})}
	close(pauser.release)
	g := newGate(GateConfig{}, zap.NewNop(), pauser, nil, nil)
	g.mu.Lock()
	g.decide(true, time.Now().Add(time.Minute))
	pause := g.pending
	g.decide(false, time.Time{})
	resume := g.pending
	g.mu.Unlock()
	g.apply(t.Context(), resume)
	g.apply(t.Context(), pause)
	require.Equal(t, []string{"resume"}, pauser.got())
}

// Regions are independent: one region's open breaker or pause holds only
// its own requests; fetching goes on while another region in use is
// healthy, and the consumer is paused for the fleet only when every region
// in use is paused.
func TestGateRegionsAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pauser := &slowPauser{release: make(chan struct{})}
		close(pauser.release)
		g := newGate(GateConfig{}, zap.NewNop(), pauser, nil, nil)
		ctx := t.Context()
		// Both regions in use.
		for _, r := range []string{"cn-north-4", "ap-southeast-1"} {
			_, err := g.acquire(ctx, r, "job-"+r, nil)
			require.NoError(t, err)
			g.record(ctx, r, "job-"+r, retry.Success, "", notProbe)
		}

		// cn-north-4 fails: its breaker opens, ap-southeast-1's does not.
		for i := range 20 {
			g.record(ctx, "cn-north-4", fmt.Sprintf("job-%d", i), retry.Transient, "", notProbe)
		}
		st := g.state()
		require.Equal(t, retry.BreakerOpen, st.Regions["cn-north-4"].Breaker)
		require.Equal(t, retry.BreakerClosed, st.Regions["ap-southeast-1"].Breaker)
		allow, _ := g.fetchAllowance()
		require.Equal(t, -1, allow, "fetching goes on for the healthy region")
		pr, err := g.acquire(ctx, "ap-southeast-1", "job-b", nil)
		require.NoError(t, err)
		require.Equal(t, notProbe, pr, "the healthy region's call goes out at once")

		// A request of the broken region waits, and gives up its slot.
		held := false
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		pr, err = g.acquire(wctx, "cn-north-4", "job-9", func() { held = true })
		require.NoError(t, err, "after the open wait it is the probe")
		require.Equal(t, breakerProbe, pr)
		require.True(t, held, "it waited at the gate without its fetch slot")
		g.record(ctx, "cn-north-4", "job-9", retry.Success, "", pr)
		require.Equal(t, retry.BreakerClosed, g.state().Regions["cn-north-4"].Breaker)

		// ap-southeast-1 rejects the credentials: only it is paused; the
		// consumer keeps running for cn-north-4.
		g.record(ctx, "ap-southeast-1", "job-c", retry.Unauthorized, "APIG.0301", notProbe)
		st = g.state()
		require.True(t, st.Regions["ap-southeast-1"].Paused)
		require.False(t, st.Regions["cn-north-4"].Paused)
		require.False(t, st.Paused, "not every region in use is paused")
		require.Empty(t, pauser.got(), "no fleet-wide pause for one region")

		// cn-north-4 too: now every region in use is paused, the fleet too.
		g.record(ctx, "cn-north-4", "job-d", retry.Unauthorized, "APIG.0301", pauseProbe)
		require.True(t, g.state().Paused)
		require.Equal(t, []string{"pause"}, pauser.got())
		allow, _ = g.fetchAllowance()
		require.Zero(t, allow)

		// One region answers again: the consumer resumes for the fleet.
		g.record(ctx, "cn-north-4", "job-e", retry.Success, "", pauseProbe)
		require.False(t, g.state().Paused)
		require.Equal(t, []string{"pause", "resume"}, pauser.got())
		require.True(t, g.state().Regions["ap-southeast-1"].Paused, "the other region stays paused")

		// A region idle for RegionIdle no longer counts as in use.
		time.Sleep(2 * time.Minute)
		_, err = g.acquire(ctx, "cn-north-4", "job-f", nil)
		require.NoError(t, err)
		g.record(ctx, "cn-north-4", "job-f", retry.Unauthorized, "APIG.0301", notProbe)
		require.True(t, g.state().Paused, "the only region in use is paused: the fleet pauses")
	})
}

// waitFor polls cond (under synctest, time is virtual) until it holds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: condition never held", what)
}

// shareLog records what the gate reports to the fleet.
type shareLog struct {
	mu     sync.Mutex
	events []string
}

func (s *shareLog) Report(region string, e retry.HoldEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("%s %s held=%v", region, e.Kind, e.Held))
}

func (s *shareLog) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// The gate reports its own breaker's and pause's changes to the fleet, and
// follows the fleet's: a region paused by another replica holds this one's
// requests without a probe from here, whatever the time, until the fleet
// resumes; a fleet that cannot be read lets this replica probe again.
func TestGateFollowsTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		share := &shareLog{}
		g := newGate(GateConfig{PauseProbe: time.Second, PauseMaxProbe: time.Second}, zap.NewNop(), nil, nil, share)
		ctx := t.Context()

		// Its own answers: reported once per change, not per answer.
		for i := range 20 {
			g.record(ctx, "", fmt.Sprintf("job-%d", i), retry.Transient, "", notProbe)
		}
		pr, err := g.acquire(ctx, "", "job-x", nil)
		require.NoError(t, err)
		require.Equal(t, breakerProbe, pr, "a quarter second on: the half-open probe")
		g.record(ctx, "", "job-x", retry.Success, "", pr)
		require.Equal(t, []string{" breaker held=true", " breaker held=false"}, share.got())

		// The fleet's pause, another replica probing.
		g.follow(ctx, "eu", retry.SharedHold{Known: true, Kind: retry.HoldPause, Reason: "401", Probe: false})
		got := make(chan probe, 1)
		go func() {
			pr, err := g.acquire(ctx, "eu", "job-y", nil)
			if err == nil {
				got <- pr
			}
		}()
		time.Sleep(time.Hour) // a fake hour: no probe from a follower
		synctest.Wait()
		require.Empty(t, got, "held while the fleet is paused")
		require.True(t, g.state().Regions["eu"].Paused)
		g.follow(ctx, "eu", retry.SharedHold{Known: true})
		require.Equal(t, notProbe, <-got, "the fleet resumed: the call goes, as no probe")
		require.False(t, g.state().Regions["eu"].Paused)

		// The fleet unknown: this replica probes itself.
		g.follow(ctx, "eu", retry.SharedHold{Known: true, Kind: retry.HoldPause, Reason: "401", Probe: false})
		g.follow(ctx, "eu", retry.SharedHold{})
		time.Sleep(time.Second)
		pr, err = g.acquire(ctx, "eu", "job-z", nil)
		require.NoError(t, err)
		require.Equal(t, pauseProbe, pr)
		require.Len(t, share.got(), 2, "following the fleet reports nothing back")
	})
}

// A 403 waits for its verdict while another request of its region is in
// flight here (it may succeed, or a run may form); once nothing else of
// the region is, the 403 is about its job after ForbiddenIdle, not the
// whole ForbiddenHold. Another region's requests do not keep it waiting.
func TestForbiddenVerdictWhenTheRegionIsIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate(GateConfig{ForbiddenHold: time.Hour}, zap.NewNop(), nil, nil, nil)
		ctx := t.Context()
		defer g.enter("cn-north-4")() // the 403's own request
		leaveOther := g.enter("cn-north-4")
		defer g.enter("ap-southeast-1")()
		g.record(ctx, "cn-north-4", "job-403", retry.Forbidden, "", notProbe)

		type verdict struct {
			dead bool
			err  error
		}
		got := make(chan verdict, 1)
		go func() {
			dead, err := g.forbiddenVerdict(ctx, "cn-north-4", "job-403", &slots{})
			got <- verdict{dead, err}
		}()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.Empty(t, got, "no verdict while another request of its region is in flight")

		leaveOther()
		left := time.Now()
		v := <-got
		require.NoError(t, v.err)
		require.True(t, v.dead, "a lone 403 is about its job")
		waited := time.Since(left)
		require.GreaterOrEqual(t, waited, 2*time.Second, "ForbiddenIdle")
		require.Less(t, waited, 3*time.Second, "not ForbiddenHold")
	})
}

// backlogStub answers Backlog.Pending with what the test sets.
type backlogStub struct {
	mu      sync.Mutex
	pending uint64
	err     error
	asked   int
}

func (b *backlogStub) Pending(context.Context) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked++
	return b.pending, b.err
}

func (b *backlogStub) set(pending uint64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending, b.err = pending, err
}

// A lone 403 is judged only once the consumer has nothing more to deliver:
// while requests wait there (a slow pull, a NATS election between a run's
// 403s) or the count cannot be read, more 403s of a run may still come, and
// it waits (at most ForbiddenHold).
func TestForbiddenVerdictWaitsForTheBacklog(t *testing.T) {
	tests := []struct {
		name        string
		givePending uint64
		giveErr     error
	}{
		{"requests still pending", 3, nil},
		{"backlog unreadable", 0, fmt.Errorf("nats: timeout")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGate(GateConfig{ForbiddenHold: time.Hour}, zap.NewNop(), nil, nil, nil)
				backlog := &backlogStub{pending: tt.givePending, err: tt.giveErr}
				g.backlog = backlog
				ctx := t.Context()
				defer g.enter("cn-north-4")()
				g.record(ctx, "cn-north-4", "job-403", retry.Forbidden, "", notProbe)
				got := make(chan bool, 1)
				go func() {
					dead, err := g.forbiddenVerdict(ctx, "cn-north-4", "job-403", &slots{})
					assert.NoError(t, err)
					got <- dead
				}()
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				require.Empty(t, got, "no verdict while the backlog may hold more")
				require.Greater(t, backlog.asked, 1, "asked again while the region stays idle")

				backlog.set(0, nil)
				emptied := time.Now()
				require.True(t, <-got, "a lone 403 is about its job")
				require.LessOrEqual(t, time.Since(emptied), 2*time.Second+200*time.Millisecond, "asked within an idle time")
			})
		})
	}
}
