package codeartssim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
)

// The read routes, as Stats.Reads names them.
const (
	ReadProjectJobs = "project_jobs"  // GET /v3/{project_id}/jobs (ShowJobListByProjectId)
	ReadJobList     = "job_list"      // GET /v1/job/list (ListJob)
	ReadDisable     = "check_disable" // GET /v1/job/{job_id}/check/disable (ShowDisable)
)

// readRoute is a parsed read request.
type readRoute struct {
	kind string
	arg  string // project id or job id
}

// parseReadPath recognises the read routes.
func parseReadPath(p string) (readRoute, bool) {
	if rest, ok := strings.CutPrefix(p, "/v1/job/"); ok {
		if rest == "list" {
			return readRoute{kind: ReadJobList}, true
		}
		if id, ok := strings.CutSuffix(rest, "/check/disable"); ok && id != "" && !strings.Contains(id, "/") {
			return readRoute{kind: ReadDisable, arg: id}, true
		}
		return readRoute{}, false
	}
	if rest, ok := strings.CutPrefix(p, "/v3/"); ok {
		if proj, ok := strings.CutSuffix(rest, "/jobs"); ok && proj != "" && !strings.Contains(proj, "/") && proj != "jobs" {
			return readRoute{kind: ReadProjectJobs, arg: proj}, true
		}
	}
	return readRoute{}, false
}

// readScripts holds outcomes for given read calls (numbered from 1).
type readScripts struct {
	mu    sync.Mutex
	calls int64
	at    map[int64]Outcome
}

// next counts a read call and returns its scripted outcome, if any.
func (r *readScripts) next() (Outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	o, ok := r.at[r.calls]
	if ok {
		delete(r.at, r.calls)
	}
	return o, ok
}

// ScriptReads makes the read calls numbered at, at+1, … (counting every
// read the server has answered, from 1) answer steps in order, e.g. a
// throttle and a 500 in the middle of a listing.
func (s *Server) ScriptReads(at int64, steps ...Outcome) {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if s.reads.at == nil {
		s.reads.at = make(map[int64]Outcome)
	}
	for i, o := range steps {
		s.reads.at[at+int64(i)] = o
	}
}

// serveRead answers a read: the gateway's checks and the random faults as
// for a recover (those that make sense on a read: throttles, 5xx, HTML
// 502, string bodies, 200 with an error code), then the catalog's answer.
func (s *Server) serveRead(w http.ResponseWriter, r *http.Request, cfg *settings, rt readRoute) {
	s.readsBy[rt.kind].Add(1)
	if !s.admit(w, r, cfg) {
		return
	}
	if o, ok := s.reads.next(); ok {
		s.reject(w, cfg, o, cfg.retryAfter)
		return
	}
	if s.randomFault(w, cfg, false) {
		return
	}
	switch rt.kind {
	case ReadDisable:
		s.serveDisable(w, cfg, rt.arg)
	default:
		s.serveList(w, cfg, r, rt)
	}
}

// listJob is one job in a list answer: the fields of the SDK's Job and
// ListJobResultJobList the worker reads, and a few it does not.
type listJob struct {
	ID          string `json:"id"`
	JobName     string `json:"job_name"`
	JobCreator  string `json:"job_creator"`
	UserName    string `json:"user_name"`
	ProjectID   string `json:"project_id,omitempty"`
	Disabled    bool   `json:"disabled"`
	IsFinished  bool   `json:"is_finished"`
	HealthScore int    `json:"health_score"`
}

func (s *Server) serveList(w http.ResponseWriter, cfg *settings, r *http.Request, rt readRoute) {
	q := r.URL.Query()
	size, err := queryInt(q.Get("page_size"), 10)
	if err != nil || size < 1 || size > MaxPageSize {
		s.reject(w, cfg, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request parameter: page_size must be 1 to 100"}, 0)
		return
	}
	index, err := queryInt(q.Get("page_index"), 0)
	if err != nil || index < 0 {
		s.reject(w, cfg, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request parameter: page_index"}, 0)
		return
	}
	// The v1 list and the "result" shape count pages from 0, the SDK shape
	// from 1 (0 reads as 1).
	shape := cfg.listShape
	if rt.kind == ReadJobList {
		shape = ShapeResult
	}
	first := index * size
	if shape == ShapeSDK {
		first = max(index-1, 0) * size
	}

	s.cat.mu.RLock()
	var all []*Job
	if rt.kind == ReadJobList {
		for _, p := range s.cat.projects {
			all = append(all, s.cat.byProj[p]...)
		}
	} else {
		all = s.cat.byProj[rt.arg]
	}
	total := len(all)
	page := make([]listJob, 0, size)
	for i := first; i < min(first+size, total); i++ {
		j := all[i]
		lj := listJob{ID: j.ID, JobName: j.Name, JobCreator: j.Creator, UserName: j.Creator, Disabled: j.Disabled, IsFinished: true, HealthScore: 100}
		if rt.kind == ReadJobList || shape == ShapeResult {
			lj.ProjectID = j.ProjectID
		}
		page = append(page, lj)
	}
	s.cat.mu.RUnlock()

	var out any
	if shape == ShapeSDK {
		out = struct {
			Jobs  []listJob `json:"jobs"`
			Total int       `json:"total"`
		}{page, total}
	} else {
		type result struct {
			Total   int       `json:"total"`
			JobList []listJob `json:"job_list"`
		}
		out = struct {
			Result result `json:"result"`
			Status string `json:"status"`
		}{result{total, page}, "success"}
	}
	body, _ := json.Marshal(out) // cannot fail: plain structs
	s.answer(w, http.StatusOK, contentJSON, body)
}

func (s *Server) serveDisable(w http.ResponseWriter, cfg *settings, jobID string) {
	if !jobid.Valid(jobID) {
		s.reject(w, cfg, Outcome{http.StatusBadRequest, CodeInvalidJobID, "Invalid job id: job_id must be 32 letters or digits"}, 0)
		return
	}
	j, ok := s.Job(jobID)
	if !ok {
		s.reject(w, cfg, Outcome{http.StatusUnprocessableEntity, CodeJobNotFoundV1, "The build job does not exist or has been deleted"}, 0)
		return
	}
	type result struct {
		Forbiddener   string  `json:"forbiddener"`
		Reson         string  `json:"reson"`
		Disabled      int     `json:"disabled"`
		JobID         string  `json:"job_id"`
		JobName       string  `json:"job_name"`
		ForbiddenTime float64 `json:"forbidden_time"`
	}
	res := result{JobID: j.ID, JobName: j.Name}
	if j.Disabled {
		res.Disabled = 1
		res.Forbiddener, res.Reson = j.DisabledBy, j.DisabledReason
		res.ForbiddenTime = float64(j.DisabledAt.UnixMilli())
	}
	body, _ := json.Marshal(struct {
		Result result `json:"result"`
		Status string `json:"status"`
	}{res, "success"}) // cannot fail: plain structs
	s.answer(w, http.StatusOK, contentJSON, body)
}

func queryInt(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}
