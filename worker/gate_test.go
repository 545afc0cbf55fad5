package worker

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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
		g := newGate(GateConfig{}, zap.NewNop(), pauser, nil)
		ctx := t.Context()

		done := make(chan struct{})
		go func() {
			defer close(done)
			g.record(ctx, "", "job-a", retry.Unauthorized, "APIG.0301", false)
		}()
		waitFor(t, func() bool { return g.state().Paused }, "paused")
		// Another call's answer and readiness do not wait for the NATS call.
		recorded := make(chan struct{})
		go func() {
			defer close(recorded)
			g.record(ctx, "", "job-b", retry.Transient, "", false)
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
	g := newGate(GateConfig{}, zap.NewNop(), pauser, nil)
	g.mu.Lock()
	g.pauseLocked("test", false)
	pause := g.pending
	g.resumeLocked()
	resume := g.pending
	g.mu.Unlock()
	g.apply(t.Context(), resume)
	g.apply(t.Context(), pause)
	require.Equal(t, []string{"resume"}, pauser.got())
}

// Calls that were in flight when the pause began answer 401 too; they say
// nothing new and must not back the probe off: only a failed probe does.
func TestGateBurstOfUnauthorizedKeepsProbeWait(t *testing.T) {
	g := newGate(GateConfig{PauseProbe: 2 * time.Second, PauseMaxProbe: time.Minute}, zap.NewNop(), nil, nil)
	for i := range 64 {
		g.record(t.Context(), "", string(rune('a'+i%26))+"job", retry.Unauthorized, "", false)
	}
	g.mu.Lock()
	wait := g.pauseWait
	g.mu.Unlock()
	require.Equal(t, 2*time.Second, wait, "64 in-flight 401s leave the first probe wait")

	g.record(t.Context(), "", "probe-job", retry.Unauthorized, "", true)
	g.mu.Lock()
	wait = g.pauseWait
	g.mu.Unlock()
	require.Equal(t, 4*time.Second, wait, "a failed probe doubles it")
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
