package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// timings is the worker child's Observer: it keeps the duration of every
// API call and every delivery (handle start → ack confirmed), so the table
// can say where a drain's time went: in the API, or around it.
type timings struct {
	mu         sync.Mutex
	calls      []time.Duration
	deliveries []time.Duration
	retries    map[string]int
	outcomes   map[string]int
	fetches    int
	asked, got int

	// limiter, when set, is sampled every 250 ms between start and stop.
	limiter *retry.Limiter
	rates   []float64
	t0      time.Time
	// throttles are the times (s since start) of 429 answers.
	throttles []float64
	done      chan struct{}
	wg        sync.WaitGroup
}

func (t *timings) start() {
	t.mu.Lock()
	t.t0 = time.Now()
	t.mu.Unlock()
	if t.limiter == nil {
		return
	}
	t.done = make(chan struct{})
	t.wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-t.done:
				return
			case <-tick.C:
				r := t.limiter.Rate()
				if time.Now().Before(t.limiter.PausedUntil()) {
					r = -1 // paused by a Retry-After
				}
				t.mu.Lock()
				t.rates = append(t.rates, r)
				t.mu.Unlock()
			}
		}
	})
}

func (t *timings) stop() {
	if t.done != nil {
		close(t.done)
		t.wg.Wait()
		t.done = nil
	}
}

func newTimings() *timings {
	return &timings{retries: map[string]int{}, outcomes: map[string]int{}}
}

func (t *timings) Outcome(o worker.Outcome) {
	t.mu.Lock()
	t.deliveries = append(t.deliveries, o.Duration)
	t.outcomes[o.Kind]++
	t.mu.Unlock()
}

func (t *timings) Call(c worker.Call) {
	t.mu.Lock()
	t.calls = append(t.calls, c.Duration)
	if c.Status == 429 && !t.t0.IsZero() && len(t.throttles) < 1000 {
		t.throttles = append(t.throttles, time.Since(t.t0).Seconds())
	}
	t.mu.Unlock()
}

func (t *timings) Retry(cause string, _ time.Duration) {
	t.mu.Lock()
	t.retries[cause]++
	t.mu.Unlock()
}

// countingSource counts the pool's pull requests: how many, how many
// messages they asked for and how many they got.
type countingSource struct {
	worker.Source
	t *timings
}

func (s *countingSource) Fetch(ctx context.Context, n int, deliver func(worker.Delivery)) error {
	got := 0
	err := s.Source.Fetch(ctx, n, func(d worker.Delivery) {
		got++
		deliver(d)
	})
	s.t.mu.Lock()
	s.t.fetches++
	s.t.asked += n
	s.t.got += got
	s.t.mu.Unlock()
	return err
}

// Connected passes the lease check through (wire.Source has it).
func (s *countingSource) Connected() bool {
	if c, ok := s.Source.(interface{ Connected() bool }); ok {
		return c.Connected()
	}
	return true
}

// dist summarises durations in milliseconds.
type dist struct {
	N    int     `json:"n"`
	Sum  float64 `json:"sum_ms"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func summarise(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	at := func(q float64) float64 { return ms(s[min(len(s)-1, int(q*float64(len(s))))]) }
	return dist{N: len(s), Sum: ms(sum), Mean: ms(sum) / float64(len(s)), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: ms(s[len(s)-1])}
}

// workerTimings is what the worker child reports at stop.
type workerTimings struct {
	Calls      dist           `json:"api_calls"`
	Deliveries dist           `json:"deliveries"`
	Retries    map[string]int `json:"retries"`
	Outcomes   map[string]int `json:"outcomes"`
	// LimiterRate is the limiter's rate every 250 ms (0: no limit, -1:
	// paused by a Retry-After).
	LimiterRate []float64 `json:"limiter_rate,omitempty"`
	// Fetches counts pull requests; Asked and Got the messages they asked
	// for and received.
	Fetches int `json:"fetches"`
	Asked   int `json:"fetch_asked"`
	Got     int `json:"fetch_got"`
	// Throttles are the times (s into the drain) of the 429s answered.
	Throttles []float64 `json:"throttles_at,omitempty"`
}

func (t *timings) summary() workerTimings {
	t.mu.Lock()
	defer t.mu.Unlock()
	return workerTimings{Calls: summarise(t.calls), Deliveries: summarise(t.deliveries), Retries: t.retries, Outcomes: t.outcomes,
		LimiterRate: slices.Clone(t.rates), Throttles: slices.Clone(t.throttles),
		Fetches: t.fetches, Asked: t.asked, Got: t.got}
}
