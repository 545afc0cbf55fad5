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
	// Recovered counts recovers applied, including apply-then-hang ones:
	// only a 200 {"status":"success"} (or a hang after applying) recovers.
	Recovered int64 `json:"recovered"`
	// Abandoned counts requests whose client went away (timed out or
	// cancelled) before the answer was written: proof that a client really
	// aborts its requests.
	Abandoned int64 `json:"abandoned"`
	// Faults counts the answer faults given, by kind; kinds never given are
	// left out (nil when none was).
	Faults map[Fault]int64 `json:"faults,omitempty"`
	// Reads counts read calls by route (ReadProjectJobs, ReadJobList,
	// ReadDisable), whatever their answer; routes never read are left out.
	Reads map[string]int64 `json:"reads,omitempty"`
	// Jobs holds per-job records, for well-formed job ids.
	Jobs map[string]JobStats `json:"jobs,omitempty"`
}

// Fault is a kind of answer fault, as counted in Stats.Faults.
type Fault string

// The answer faults counted in Stats.Faults. None of them recovers the job.
const (
	FaultFail200      Fault = "fail_200"     // 200 {"status":"fail"} (WithFailStatus)
	FaultErrorOn200   Fault = "error_on_200" // 200 with an error_code (WithErrorOn200)
	FaultHTML502      Fault = "html_502"     // a proxy's 502 HTML page (WithHTMLErrors)
	FaultHTML200      Fault = "html_200"     // a proxy's 200 HTML page (WithHTMLSuccess)
	FaultStringBody   Fault = "string_body"  // an error body sent as a JSON string (WithStringBodies)
	FaultRoute404     Fault = "route_404"    // 404 APIG.0101 (WithRoute404, WithRoute404Window)
	FaultUnauthorized Fault = "unauthorized" // 401 APIG.0301 in a window (WithUnauthorizedWindow)
)

// Indexes of Server.faults, in the order of faultNames.
const (
	faultFail200 = iota
	faultErrorOn200
	faultHTML502
	faultHTML200
	faultStringBody
	faultRoute404
	faultUnauthorized
	numFaults
)

var faultNames = [numFaults]Fault{
	FaultFail200, FaultErrorOn200, FaultHTML502, FaultHTML200, FaultStringBody, FaultRoute404, FaultUnauthorized,
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
	for i := range s.faults {
		if n := s.faults[i].Load(); n > 0 {
			if st.Faults == nil {
				st.Faults = make(map[Fault]int64)
			}
			st.Faults[faultNames[i]] = n
		}
	}
	for k, n := range s.readsBy {
		if v := n.Load(); v > 0 {
			if st.Reads == nil {
				st.Reads = make(map[string]int64)
			}
			st.Reads[k] = v
		}
	}
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

// RecoveredJobs returns how many times each job was recovered, for the jobs
// recovered at least once: the simulator's truth, whatever its answers said.
func (s *Server) RecoveredJobs() map[string]int {
	out := make(map[string]int)
	s.jobs.Range(func(k, v any) bool {
		if n := v.(*jobRecord).recovered.Load(); n > 0 {
			out[k.(string)] = int(n)
		}
		return true
	})
	return out
}

// Reset zeroes the records. Configuration and scripts stay.
func (s *Server) Reset() {
	s.calls.Store(0)
	s.recovered.Store(0)
	s.abandoned.Store(0)
	for i := range s.byStatus {
		s.byStatus[i].Store(0)
	}
	for i := range s.faults {
		s.faults[i].Store(0)
	}
	s.jobs.Clear()
	for _, n := range s.readsBy {
		n.Store(0)
	}
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
