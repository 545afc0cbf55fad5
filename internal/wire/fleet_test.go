package wire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// A program that joins the fleet (worker discover) paces itself at its
// share of the fleet's current rate, not at its own cap: after a worker
// was throttled, it starts below the cap, with the worker's cut.
func TestJoinFleetTakesTheFleetsRate(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := t.Context()
	lc := retry.LimiterConfig{Rate: 100}

	w, err := wire.JoinFleet(ctx, env.Conn, "worker", lc)
	require.NoError(t, err)
	defer w.Leave()
	worker := w.Limiter
	require.InDelta(t, 100, worker.Rate(), 1e-9, "alone, the whole cap")
	worker.Throttled(0)
	require.Eventually(t, func() bool { return worker.Rate() < 99 }, 10*time.Second, 10*time.Millisecond, "the fleet's rate is cut")
	cut := worker.Rate()

	// Discover asks for no cap: it keeps the fleet's (a replica with
	// another would reset the fleet's rate).
	d, err := wire.JoinFleet(ctx, env.Conn, "discover", retry.LimiterConfig{})
	require.NoError(t, err)
	require.InDelta(t, 100, d.Cap, 1e-9)
	require.Positive(t, d.Limiter.Rate())
	require.LessOrEqual(t, d.Limiter.Rate(), cut+1e-9, "discover starts at its share of the fleet's cut rate, not unlimited")
	require.Less(t, worker.Rate(), 100.0, "the fleet kept its cut")
	d.Leave()
}
