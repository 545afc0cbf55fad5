package codeartssim

import (
	"encoding/json"
	"net/http"
)

// Stats is a snapshot of what the server saw. Counters taken while requests
// are in flight may be a request apart from each other.
type Stats struct {
	// Calls counts API requests (everything but GET /stats).
	Calls int64 `json:"calls"`
	// ByStatus counts answers by HTTP status.
	ByStatus map[int]int64 `json:"by_status"`
	// Throttled counts 429 answers.
	Throttled int64 `json:"throttled"`
	// Recovered counts recovers applied, including apply-then-hang ones.
	Recovered int64 `json:"recovered"`
	// Abandoned counts requests whose client went away (timed out or
	// cancelled) before the answer was written: proof that a client really
	// aborts its requests.
	Abandoned int64 `json:"abandoned"`
	// Jobs holds per-job records, for well-formed job ids.
	Jobs map[string]JobStats `json:"jobs,omitempty"`
}

// JobStats is one job's record.
type JobStats struct {
	// Calls counts recover requests for the job, whatever their answer.
	Calls int64 `json:"calls"`
	// Recovered counts the times the job was actually recovered.
	Recovered int64 `json:"recovered"`
}

// Stats returns a snapshot of the records.
func (s *Server) Stats() Stats { return s.stats(true) }

func (s *Server) stats(withJobs bool) Stats {
	st := Stats{
		Calls:     s.calls.Load(),
		ByStatus:  make(map[int]int64),
		Recovered: s.recovered.Load(),
		Abandoned: s.abandoned.Load(),
	}
	for code := range s.byStatus {
		if n := s.byStatus[code].Load(); n > 0 {
			st.ByStatus[code] = n
		}
	}
	st.Throttled = st.ByStatus[http.StatusTooManyRequests]
	if withJobs {
		st.Jobs = make(map[string]JobStats)
		s.jobs.Range(func(k, v any) bool {
			j := v.(*jobRecord)
			st.Jobs[k.(string)] = JobStats{Calls: j.calls.Load(), Recovered: j.recovered.Load()}
			return true
		})
	}
	return st
}

// Recovered returns how many times jobID was recovered.
func (s *Server) Recovered(jobID string) int {
	if v, ok := s.jobs.Load(jobID); ok {
		return int(v.(*jobRecord).recovered.Load())
	}
	return 0
}

// Reset zeroes the records. Configuration and scripts stay.
func (s *Server) Reset() {
	s.calls.Store(0)
	s.recovered.Store(0)
	s.abandoned.Store(0)
	for i := range s.byStatus {
		s.byStatus[i].Store(0)
	}
	s.jobs.Clear()
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	st := s.stats(r.URL.Query().Get("jobs") != "0")
	body, err := json.Marshal(st)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
