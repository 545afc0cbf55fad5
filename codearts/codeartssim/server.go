package codeartssim

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
)

const maxBody = 1 << 20

const (
	contentJSON     = "application/json"
	contentHTML     = "text/html"
	contentHTMLUTF8 = "text/html; charset=utf-8"
)

var (
	successBody = []byte(`{"status":"success"}`)
	failBody    = []byte(`{"status":"fail"}`)

	// htmlBadGateway is what nginx in front of a dead upstream sends.
	htmlBadGateway = []byte("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
		"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
	// htmlProxyPage is a proxy's or firewall's own 200 page.
	htmlProxyPage = []byte("<!DOCTYPE html>\n<html>\n<head><title>Notice</title></head>\n<body>\n" +
		"<h1>Request received</h1>\n<p>Your request is being processed.</p>\n</body>\n</html>\n")
)

// Server is the simulated API. It is an http.Handler; Start serves it on a
// listener of its own. All methods are safe for concurrent use.
type Server struct {
	cfg   atomic.Pointer[settings]
	cfgMu sync.Mutex // serialises Configure

	rngMu sync.Mutex
	rng   *rand.Rand

	idPrefix string // random per server, so request ids are unique across servers
	seq      atomic.Uint64

	calls     atomic.Int64
	recovered atomic.Int64
	abandoned atomic.Int64
	byStatus  [600]atomic.Int64
	faults    [numFaults]atomic.Int64
	jobs      sync.Map // job id → *jobRecord
	scripts   sync.Map // job id → *script

	cat     catalog                  // the jobs' state (jobs.go)
	reads   readScripts              // scripted read answers (reads.go)
	readsBy map[string]*atomic.Int64 // read calls by route; keys fixed at New

	done      chan struct{} // closed by Close: ends latency and hangs
	closeOnce sync.Once

	mu        sync.Mutex
	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{}
}

type jobRecord struct {
	id        string
	calls     atomic.Int64
	recovered atomic.Int64
}

type script struct {
	mu    sync.Mutex
	steps []Outcome
}

// New returns a server with the given options; without any it answers every
// well-formed recover with success and does not authenticate.
func New(opts ...Option) *Server {
	var b [8]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand panics instead)
	s := &Server{
		idPrefix: hex.EncodeToString(b[:]),
		rng: rand.New(rand.NewPCG( //nolint:gosec // fault injection, not security
			binary.LittleEndian.Uint64(b[:]), 0x9e3779b97f4a7c15)),
		done: make(chan struct{}),
		readsBy: map[string]*atomic.Int64{
			ReadProjectJobs: new(atomic.Int64), ReadJobList: new(atomic.Int64), ReadDisable: new(atomic.Int64),
		},
	}
	cfg := defaultSettings()
	for _, o := range opts {
		o(cfg)
	}
	s.store(cfg)
	return s
}

// Configure applies options on top of the current configuration, atomically
// for requests that arrive afterwards.
func (s *Server) Configure(opts ...Option) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	cfg := s.cfg.Load().clone()
	for _, o := range opts {
		o(cfg)
	}
	s.store(cfg)
}

func (s *Server) store(cfg *settings) {
	if cfg.seed != nil {
		s.rngMu.Lock()
		s.rng = rand.New(rand.NewPCG(*cfg.seed, 0x9e3779b97f4a7c15)) //nolint:gosec // seeded fault injection, not security
		s.rngMu.Unlock()
		cfg.seed = nil
	}
	if cfg.jobSeed != nil {
		s.SeedJobs(*cfg.jobSeed)
		cfg.jobSeed = nil
	}
	s.cfg.Store(cfg)
}

// SetCredentials replaces the AK/SK pair requests must be signed with.
func (s *Server) SetCredentials(ak, sk string) { s.Configure(WithCredentials(ak, sk)) }

// SetOutage starts (true) or ends (false) an outage: every recover gets 503.
func (s *Server) SetOutage(on bool) { s.Configure(WithOutage(on)) }

// Script makes the next recovers of jobID answer the given statuses in
// order (with StandardOutcome codes), then proceed as usual. It replaces any
// earlier script for the job.
func (s *Server) Script(jobID string, statuses ...int) {
	steps := make([]Outcome, len(statuses))
	for i, st := range statuses {
		steps[i] = StandardOutcome(st)
	}
	s.ScriptOutcomes(jobID, steps...)
}

// ScriptOutcomes is Script with explicit outcomes, e.g. BackendThrottle.
func (s *Server) ScriptOutcomes(jobID string, steps ...Outcome) {
	s.scripts.Store(jobID, &script{steps: steps})
}

func (s *Server) nextScripted(jobID string) (Outcome, bool) {
	v, ok := s.scripts.Load(jobID)
	if !ok {
		return Outcome{}, false
	}
	sc, ok := v.(*script)
	if !ok {
		return Outcome{}, false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.steps) == 0 {
		return Outcome{}, false
	}
	o := sc.steps[0]
	sc.steps = sc.steps[1:]
	return o, true
}

// Start serves the simulator on addr (e.g. "127.0.0.1:0" for a free port)
// until Close.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("codeartssim: already started")
	}
	select {
	case <-s.done:
		return errors.New("codeartssim: closed")
	default:
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return nil
}

// Addr returns the listening address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the base URL to use as the client's endpoint, or "" before
// Start.
func (s *Server) URL() string {
	if a := s.Addr(); a != "" {
		return "http://" + a
	}
	return ""
}

// Close stops serving: it ends pending latency and hangs, closes the
// listener and connections, and waits for the serving goroutine. It is
// idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	srv, serveDone := s.srv, s.serveDone
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-serveDone
	return err
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", s.requestID())
	if r.URL.Path == "/stats" && r.Method == http.MethodGet {
		s.serveStats(w, r)
		return
	}
	s.calls.Add(1)
	cfg := s.cfg.Load()
	jobID, ok := parseRecoverPath(r.URL.Path)
	ok = ok && r.Method == http.MethodPost
	var job *jobRecord
	if ok && jobid.Valid(jobID) {
		job = s.job(jobID)
		job.calls.Add(1)
	}
	// The gateway answers an API it has not published before it looks at
	// the signature.
	if cfg.inRoute404(time.Now()) {
		s.faults[faultRoute404].Add(1)
		s.fail(w, NoSuchAPI, 0)
		return
	}
	if !ok {
		if rt, isRead := parseReadPath(r.URL.Path); isRead && r.Method == http.MethodGet {
			s.serveRead(w, r, cfg, rt)
			return
		}
		s.fail(w, NoSuchAPI, 0)
		return
	}
	s.serveRecover(w, r, cfg, jobID, job)
}

// serveRecover answers a recover of jobID; job is nil when jobID is not a
// valid job id.
func (s *Server) serveRecover(w http.ResponseWriter, r *http.Request, cfg *settings, jobID string, job *jobRecord) {
	if !s.admit(w, r, cfg) {
		return
	}
	if job == nil {
		s.reject(w, cfg, Outcome{http.StatusBadRequest, CodeInvalidJobID, "Invalid job id: job_id must be 32 letters or digits"}, 0)
		return
	}
	if o, ok := s.nextScripted(jobID); ok {
		s.give(w, cfg, job, o)
		return
	}
	if s.randomFault(w, cfg, true) {
		return
	}
	if o, ok := cfg.outcomeFor(jobID); ok {
		s.give(w, cfg, job, o)
		return
	}
	if cfg.hangFor > 0 && (cfg.hangPrefix != "" && strings.HasPrefix(jobID, cfg.hangPrefix) || s.chance(cfg.hangProb)) {
		job.recovered.Add(1)
		s.recovered.Add(1)
		s.enable(jobID)
		if s.wait(r.Context(), cfg.hangFor) {
			s.answer(w, http.StatusOK, contentJSON, successBody)
		}
		return
	}
	s.succeed(w, job)
}

// admit makes the gateway's checks every call passes before it is served
// (body, 401 window, signature, latency, outage, quota) and answers a call
// that fails one; false means the call is answered (or the client left).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, cfg *settings) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.fail(w, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request body"}, 0)
		return false
	}
	if inWindow(cfg.unauthWindows, time.Now()) {
		s.faults[faultUnauthorized].Add(1)
		s.fail(w, Outcome{http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: the access key is locked after repeated failures"}, 0)
		return false
	}
	if err := authenticate(cfg, r, body, time.Now()); err != nil {
		s.fail(w, Outcome{http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: " + err.Error()}, 0)
		return false
	}
	if !s.wait(r.Context(), s.latency(cfg)) {
		return false // the client went away or the server is closing: no answer
	}
	if cfg.inOutage(time.Now()) {
		s.reject(w, cfg, StandardOutcome(http.StatusServiceUnavailable), 0)
		return false
	}
	if cfg.limiter != nil && !cfg.limiter.Allow() {
		s.reject(w, cfg, StandardOutcome(http.StatusTooManyRequests), limiterRetryAfter(cfg))
		return false
	}
	return true
}

// randomFault answers the call with one of the configured random faults,
// or returns false. The draws are made in one fixed order (seeded runs
// replay); a read skips the success-shaped faults (200 status:fail, an
// HTML 200), which only a recover answers.
func (s *Server) randomFault(w http.ResponseWriter, cfg *settings, recover bool) bool {
	switch {
	case s.chance(cfg.throttle):
		s.reject(w, cfg, StandardOutcome(http.StatusTooManyRequests), cfg.retryAfter)
	case s.chance(cfg.backendThrottle):
		s.reject(w, cfg, BackendThrottle, 0)
	case s.chance(cfg.errRate) && len(cfg.errStatuses) > 0:
		s.reject(w, cfg, StandardOutcome(cfg.errStatuses[s.intn(len(cfg.errStatuses))]), 0)
	case s.chance(cfg.htmlErrors):
		s.faults[faultHTML502].Add(1)
		s.answer(w, http.StatusBadGateway, contentHTML, htmlBadGateway)
	case recover && s.chance(cfg.failStatus):
		s.faults[faultFail200].Add(1)
		s.answer(w, http.StatusOK, contentJSON, failBody)
	case s.chance(cfg.errorOn200):
		s.faults[faultErrorOn200].Add(1)
		s.answer(w, http.StatusOK, contentJSON, errorBody(Outcome{http.StatusOK, CodeInternal, "Internal server error"}))
	case recover && s.chance(cfg.htmlSuccess):
		s.faults[faultHTML200].Add(1)
		s.answer(w, http.StatusOK, contentHTMLUTF8, htmlProxyPage)
	default:
		return false
	}
	return true
}

// give answers a scripted or prefix outcome: success for a 2xx, else an
// error.
func (s *Server) give(w http.ResponseWriter, cfg *settings, job *jobRecord, o Outcome) {
	if o.Status >= 200 && o.Status < 300 {
		s.succeed(w, job)
		return
	}
	s.reject(w, cfg, o, cfg.retryAfter)
}

func (s *Server) succeed(w http.ResponseWriter, job *jobRecord) {
	job.recovered.Add(1)
	s.recovered.Add(1)
	s.enable(job.id)
	s.answer(w, http.StatusOK, contentJSON, successBody)
}

// reject writes an error answer from behind the gateway's authentication:
// with probability stringBodies its JSON body goes out as a JSON string.
func (s *Server) reject(w http.ResponseWriter, cfg *settings, o Outcome, retryAfter time.Duration) {
	body := errorBody(o)
	if s.chance(cfg.stringBodies) {
		s.faults[faultStringBody].Add(1)
		body, _ = json.Marshal(string(body)) // cannot fail for a string
	}
	s.write(w, o, retryAfter, body)
}

// fail writes an error answer as it is; retryAfter is sent on 429s.
func (s *Server) fail(w http.ResponseWriter, o Outcome, retryAfter time.Duration) {
	s.write(w, o, retryAfter, errorBody(o))
}

func (s *Server) write(w http.ResponseWriter, o Outcome, retryAfter time.Duration, body []byte) {
	if o.Status == http.StatusTooManyRequests {
		secs := int64(math.Ceil(retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	s.answer(w, o.Status, contentJSON, body)
}

// errorBody is {"error_code":…,"error_msg":…}, without error_code when o has
// none.
func errorBody(o Outcome) []byte {
	body, _ := json.Marshal(struct {
		Code string `json:"error_code,omitempty"`
		Msg  string `json:"error_msg"`
	}{o.Code, o.Msg}) // cannot fail for two strings
	return body
}

func (s *Server) answer(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	// The client may be gone; nothing to do about it. Bodies are constants
	// or JSON the simulator encodes: no request data is echoed.
	_, _ = w.Write(body) //nolint:gosec // G705: see above, nothing from the request
	if status >= 0 && status < len(s.byStatus) {
		s.byStatus[status].Add(1)
	}
}

// limiterRetryAfter is the time until the bucket holds a token again.
func limiterRetryAfter(cfg *settings) time.Duration {
	lim := cfg.limiter
	missing := 1 - lim.Tokens()
	if missing <= 0 || lim.Limit() <= 0 {
		return time.Second
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// wait sleeps for d unless the request or the server ends first; it reports
// whether the full time passed. A request whose client goes away meanwhile
// counts as abandoned.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		s.abandoned.Add(1)
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) latency(cfg *settings) time.Duration {
	d := cfg.latency
	if cfg.jitter > 0 {
		s.rngMu.Lock()
		d += time.Duration(s.rng.Int64N(int64(cfg.jitter)))
		s.rngMu.Unlock()
	}
	return d
}

// chance draws true with probability p; p <= 0 takes no lock.
func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < p
}

func (s *Server) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func (s *Server) job(id string) *jobRecord {
	if v, ok := s.jobs.Load(id); ok {
		return v.(*jobRecord)
	}
	v, _ := s.jobs.LoadOrStore(id, &jobRecord{id: id})
	return v.(*jobRecord)
}

// requestID returns a unique 32-hex-digit id, like the real API's.
func (s *Server) requestID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], s.seq.Add(1))
	return s.idPrefix + hex.EncodeToString(b[:])
}

func parseRecoverPath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v3/jobs/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/recover")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}
