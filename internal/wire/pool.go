package wire

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// PoolOptions is what the programs that run a pool (worker run, worker
// demo, the integration tests) choose beyond worker.Config.
type PoolOptions struct {
	// Rate is the API rate cap in req/s, 0 = none (the rate is learned).
	Rate float64
	// Burst is the limiter's burst; 0 = a tenth of a second's worth.
	Burst int
	// ProcessScope keeps the rate this process's own; by default the
	// replicas learn and share it through NATS KV (queue.Fleet).
	ProcessScope bool
	// Recoverer replaces the API client; tests only (a panicking call).
	Recoverer worker.Recoverer
}

// Pool is a pool wired to NATS and the API: the one way run, demo and the
// tests build it, so none of them can miss a part.
type Pool struct {
	*worker.Pool
	// Limiter is the default region's limiter (gauges, status page);
	// Limiters has every region's.
	Limiter  *retry.Limiter
	Limiters *Limiters
	Consumer *queue.Consumer // the bound consumer, for lag and status
	fleets   []*queue.Fleet  // one per region; none with ProcessScope
}

// NewPool binds the consumer and the max-deliveries advisories, joins the
// fleet's rate, binds the outcome claims, and builds the pool from cfg with everything the transport
// and the client provide: AckWait and MaxDeliver as the bound consumer has
// them, results, dead letters, requeued hand-backs, the fleet-wide consumer
// pause, the allowed regions. cfg.Limiter is replaced. Each step may be
// repeated (conn.Await retries NewPool while JetStream settles).
func NewPool(ctx context.Context, conn *queue.Conn, api *codearts.Client, cfg worker.Config, o PoolOptions) (*Pool, error) {
	cons, err := conn.Consumer(ctx)
	if err != nil {
		return nil, err
	}
	adv, err := conn.Advisories(ctx)
	if err != nil {
		return nil, err
	}
	// One limiter per allowed region, the default region's first; each
	// joins its region's fleet (setting it to the fleet's current share).
	lc := retry.LimiterConfig{Rate: o.Rate, Burst: o.Burst}
	regions := api.Regions()
	lim := &Limiters{byRegion: map[string]*retry.Limiter{}}
	limiters := make([]*retry.Limiter, len(regions))
	for i, region := range regions {
		limiter, err := retry.NewLimiter(lc)
		if err != nil {
			return nil, fmt.Errorf("rate-limit: %w", err)
		}
		limiters[i] = limiter
		if i == 0 {
			lim.def = limiter
		} else {
			lim.byRegion[region] = limiter
		}
	}
	var fleets []*queue.Fleet
	holds := Holds{}
	if !o.ProcessScope {
		var err error
		if fleets, err = joinFleets(ctx, conn, fleetName(cfg.Name), regions, limiters, retry.FleetPolicyOf(lc)); err != nil {
			return nil, err
		}
		for _, f := range fleets {
			holds[f.Region()] = f
		}
		cfg.Share = holds // breakers and pauses are the fleet's too
	}
	cfg.DefaultRegion = regions[0]
	cfg.Consumer = conn.Config().Consumer
	cfg.AckWait, cfg.MaxDeliver = cons.Settings()
	cfg.Limiter = lim
	cfg.Results = conn
	if cfg.Claims, err = conn.Outcomes(ctx); err != nil {
		return nil, err
	}
	cfg.Stranded = Stranded{A: adv}
	cfg.Requeue = Requeuer{C: conn}
	cfg.Pauser = conn
	cfg.Backlog = conn
	if cfg.Decode.ValidRegion == nil {
		cfg.Decode.ValidRegion = api.AllowedRegion
	}
	if cfg.States == nil {
		cfg.States = States{C: api}
	}
	rec := o.Recoverer
	if rec == nil {
		rec = Recoverer(api)
	}
	p, err := worker.New(cfg, Source{C: cons}, rec, conn)
	if err != nil {
		return nil, err
	}
	for _, f := range fleets {
		f.Watch(p)
	}
	return &Pool{Pool: p, Limiter: lim.Default(), Limiters: lim, Consumer: cons, fleets: fleets}, nil
}

// Run runs the pool until ctx ends and it has drained (worker.Pool.Run).
// The fleet's share holds while the pool drains; then this replica leaves
// the fleet, and the others take its share at once.
func (p *Pool) Run(ctx context.Context) error {
	fleetCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	var fleets sync.WaitGroup
	for _, f := range p.fleets {
		fleets.Go(func() { f.Run(fleetCtx) })
	}
	err := p.Pool.Run(ctx)
	stopFleet()
	fleets.Wait()
	return err
}

// joinFleets joins each region's fleet, all at once (a join waits a sync
// period for the others to count it), and makes each limiter the fleet's.
// The default region (regions[0]) keeps the key it always had ("fleet").
func joinFleets(ctx context.Context, conn *queue.Conn, name string, regions []string, limiters []*retry.Limiter, policy retry.FleetPolicy) ([]*queue.Fleet, error) {
	fleets := make([]*queue.Fleet, len(regions))
	errs := make([]error, len(regions))
	var wg sync.WaitGroup
	for i, region := range regions {
		key := region
		if i == 0 {
			key = ""
		}
		wg.Go(func() {
			fleets[i], errs[i] = conn.Fleet(ctx, queue.FleetConfig{Name: name, Region: key, Policy: policy, Pacer: limiters[i]})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, f := range fleets {
		limiters[i].JoinFleet(f)
	}
	return fleets, nil
}

// fleetName names this process in the fleet's state: the pod (or host) name
// and a random suffix, so that processes sharing a host stay apart.
func fleetName(name string) string {
	if name == "" {
		name = os.Getenv("POD_NAME")
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}
