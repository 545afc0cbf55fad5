package ops

import (
	"maps"
	"sync"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Totals are this process's counts since it started, as the status page
// shows them. They are counted from the same events as the Prometheus
// counters, never read back from the registry by name: a metric renamed for
// Prometheus conventions cannot zero the page.
type Totals struct {
	// Recovered counts requests recovered here.
	Recovered int64 `json:"recovered"`
	// DeadLettered counts requests dead-lettered here, by reason.
	DeadLettered map[string]int64 `json:"dead_lettered"`
	// APICalls counts recover calls by HTTP status ("error": no answer).
	APICalls map[string]int64 `json:"api_calls"`
	// Retries counts retries by cause.
	Retries map[string]int64 `json:"retries"`
}

// Finished is the requests that reached a terminal state here.
func (t Totals) Finished() int64 {
	n := t.Recovered
	for _, v := range t.DeadLettered {
		n += v
	}
	return n
}

// Calls is the API calls made here.
func (t Totals) Calls() int64 {
	var n int64
	for _, v := range t.APICalls {
		n += v
	}
	return n
}

// totals keeps Totals for Metrics; safe for concurrent use.
type totals struct {
	mu sync.Mutex
	t  Totals
}

// newTotals starts every dead-letter reason and retry cause at zero, as the
// counters do, so the page lists them before the first one happens.
func newTotals() *totals {
	t := Totals{DeadLettered: map[string]int64{}, APICalls: map[string]int64{}, Retries: map[string]int64{}}
	for _, r := range deadLetterReasons {
		t.DeadLettered[r] = 0
	}
	for _, c := range retryCauses {
		t.Retries[c] = 0
	}
	return &totals{t: t}
}

func (s *totals) outcome(kind, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case worker.OutcomeRecovered:
		s.t.Recovered++
	case worker.OutcomeDeadLettered:
		s.t.DeadLettered[reason]++
	}
}

func (s *totals) call(status string) {
	s.mu.Lock()
	s.t.APICalls[status]++
	s.mu.Unlock()
}

func (s *totals) retry(cause string) {
	s.mu.Lock()
	s.t.Retries[cause]++
	s.mu.Unlock()
}

func (s *totals) read() Totals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Totals{
		Recovered: s.t.Recovered, DeadLettered: maps.Clone(s.t.DeadLettered),
		APICalls: maps.Clone(s.t.APICalls), Retries: maps.Clone(s.t.Retries),
	}
}

// Totals returns this process's counts since it started (a copy).
func (m *Metrics) Totals() Totals { return m.totals.read() }
