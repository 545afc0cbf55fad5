package codeartssim

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// jobListBody is the job list the simulator answers: it keeps no jobs of
// any project (`worker doctor` reads it to prove credentials and route).
var jobListBody = []byte(`{"jobs":[],"total":0}`)

// serveJobList answers ShowJobListByProjectId (GET /v3/{project_id}/jobs)
// behind the same signature check as a recover, and reports whether r was
// that read.
func (s *Server) serveJobList(w http.ResponseWriter, r *http.Request, cfg *settings) bool {
	project, ok := strings.CutPrefix(r.URL.Path, "/v3/")
	if !ok || r.Method != http.MethodGet {
		return false
	}
	project, ok = strings.CutSuffix(project, "/jobs")
	if !ok || project == "" || strings.Contains(project, "/") {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.fail(w, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request body"}, 0)
		return true
	}
	if err := authenticate(cfg, r, body, time.Now()); err != nil {
		s.fail(w, Outcome{http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: " + err.Error()}, 0)
		return true
	}
	s.answer(w, http.StatusOK, contentJSON, jobListBody)
	return true
}
