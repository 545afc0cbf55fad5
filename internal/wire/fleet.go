package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Joined is a limiter paced by the fleet (JoinFleet).
type Joined struct {
	// Limiter paces the calls.
	Limiter *retry.Limiter
	// Cap is the cap the fleet runs under (worker run's --rate-limit), which
	// replaced the one asked for when the fleet already had another; 0 =
	// none.
	Cap float64
	// Leave stops the sync and leaves the fleet (the workers take the share
	// back at once).
	Leave func()
}

// JoinFleet returns a limiter paced at a share of the fleet's rate of the
// workers' default region (the KV key worker run's default region shares),
// as a replica of its own named from name: a program that calls the API
// beside the workers (worker discover) spends the same quota, and a
// throttle it meets slows the workers too. It keeps the cap the fleet
// already runs under (a replica with another cap would reset the fleet's
// rate to its own), and returns once the limiter has the fleet's current
// share.
func JoinFleet(ctx context.Context, conn *queue.Conn, name string, lc retry.LimiterConfig) (*Joined, error) {
	kv, err := conn.RateBucket(ctx)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, "fleet") // the default region's key (queue.FleetConfig.Region "")
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// No fleet yet: this replica's cap starts it.
	case err != nil:
		return nil, fmt.Errorf("fleet rate: %w", err)
	default:
		var st struct {
			Rate retry.FleetRate `json:"rate"`
		}
		if json.Unmarshal(e.Value(), &st) == nil {
			lc.Rate = st.Rate.Cap
		}
	}
	lim, err := retry.NewLimiter(lc)
	if err != nil {
		return nil, fmt.Errorf("rate-limit: %w", err)
	}
	fleet, err := conn.Fleet(ctx, queue.FleetConfig{Name: fleetName(name), Policy: retry.FleetPolicyOf(lc), Pacer: lim})
	if err != nil {
		return nil, err
	}
	lim.JoinFleet(fleet)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { fleet.Run(runCtx) })
	return &Joined{Limiter: lim, Cap: lc.Rate, Leave: func() {
		stop()
		wg.Wait()
	}}, nil
}
