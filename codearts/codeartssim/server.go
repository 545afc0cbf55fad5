package codeartssim

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
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
)

const maxBody = 1 << 20

var successBody = []byte(`{"status":"success"}`)

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
	jobs      sync.Map // job id → *jobRecord
	scripts   sync.Map // job id → *script

	done      chan struct{} // closed by Close: ends latency and hangs
	closeOnce sync.Once

	mu        sync.Mutex
	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{}
}

type jobRecord struct {
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
	jobID, ok := parseRecoverPath(r.URL.Path)
	if !ok || r.Method != http.MethodPost {
		s.fail(w, Outcome{http.StatusNotFound, CodeNoSuchAPI, "The API does not exist or has not been published in the environment"}, 0)
		return
	}
	s.serveRecover(w, r, jobID)
}

func (s *Server) serveRecover(w http.ResponseWriter, r *http.Request, jobID string) {
	cfg := s.cfg.Load()
	var job *jobRecord
	if jobid.Valid(jobID) {
		job = s.job(jobID)
		job.calls.Add(1)
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.fail(w, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request body"}, 0)
		return
	}
	if err := authenticate(cfg, r, body, time.Now()); err != nil {
		s.fail(w, Outcome{http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: " + err.Error()}, 0)
		return
	}
	if !s.wait(r.Context(), s.latency(cfg)) {
		return // the client went away or the server is closing: no answer
	}
	if cfg.inOutage(time.Now()) {
		s.fail(w, StandardOutcome(http.StatusServiceUnavailable), 0)
		return
	}
	if cfg.limiter != nil && !cfg.limiter.Allow() {
		s.fail(w, StandardOutcome(http.StatusTooManyRequests), limiterRetryAfter(cfg))
		return
	}
	if job == nil {
		s.fail(w, Outcome{http.StatusBadRequest, CodeInvalidParam, "Invalid request parameter: job_id must be 32 letters or digits"}, 0)
		return
	}
	if o, ok := s.nextScripted(jobID); ok {
		if o.Status >= 200 && o.Status < 300 {
			s.succeed(w, job)
		} else {
			s.fail(w, o, cfg.retryAfter)
		}
		return
	}
	switch {
	case s.chance(cfg.throttle):
		s.fail(w, StandardOutcome(http.StatusTooManyRequests), cfg.retryAfter)
		return
	case s.chance(cfg.backendThrottle):
		s.fail(w, BackendThrottle, 0)
		return
	case s.chance(cfg.errRate) && len(cfg.errStatuses) > 0:
		s.fail(w, StandardOutcome(cfg.errStatuses[s.intn(len(cfg.errStatuses))]), 0)
		return
	}
	if o, ok := cfg.outcomeFor(jobID); ok {
		if o.Status >= 200 && o.Status < 300 {
			s.succeed(w, job)
		} else {
			s.fail(w, o, cfg.retryAfter)
		}
		return
	}
	if cfg.hangFor > 0 && (cfg.hangPrefix != "" && strings.HasPrefix(jobID, cfg.hangPrefix) || s.chance(cfg.hangProb)) {
		job.recovered.Add(1)
		s.recovered.Add(1)
		if s.wait(r.Context(), cfg.hangFor) {
			s.answer(w, http.StatusOK, successBody)
		}
		return
	}
	s.succeed(w, job)
}

func (s *Server) succeed(w http.ResponseWriter, job *jobRecord) {
	job.recovered.Add(1)
	s.recovered.Add(1)
	s.answer(w, http.StatusOK, successBody)
}

// fail writes an error answer; retryAfter is sent on 429s.
func (s *Server) fail(w http.ResponseWriter, o Outcome, retryAfter time.Duration) {
	if o.Status == http.StatusTooManyRequests {
		secs := int64(math.Ceil(retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	body, _ := json.Marshal(struct {
		Code string `json:"error_code"`
		Msg  string `json:"error_msg"`
	}{o.Code, o.Msg}) // cannot fail for two strings
	s.answer(w, o.Status, body)
}

func (s *Server) answer(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
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
	v, _ := s.jobs.LoadOrStore(id, &jobRecord{})
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
