package ui

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

//go:embed assets
var assets embed.FS

// ActionHeader must accompany POST /api/replay (any non-empty value; the
// page sends "replay"). Browsers let a page on another origin send it only
// after a CORS preflight, which this server never answers.
const ActionHeader = "X-Recover-Action"

// Streams reads and repairs the worker's streams. *admin.Streams
// implements it.
type Streams interface {
	// Snapshot reads the figures and the dead letters grouped, reusing
	// prev's dead letters when they did not change.
	Snapshot(ctx context.Context, prev *admin.Snapshot) (*admin.Snapshot, error)
	// Replay replays the dead letters that match f within b, as
	// `worker dlq replay` does.
	Replay(ctx context.Context, f admin.Filter, b admin.ReplayBounds, selected func(int), progress func(int)) (admin.ReplaySummary, error)
}

// Config configures a Server.
type Config struct {
	// Actions enables the replay control and POST /api/replay, for callers
	// that present Token. Default false: the page is read-only.
	Actions bool
	// Token is the bearer token POST /api/replay requires
	// (--ui-token-file). "" = the page is read-only whatever Actions says.
	Token string
	// ReplayMax is the most dead letters one replay from the page moves
	// (the oldest of the group first). Default 1000.
	ReplayMax int
	// ReplayEvery is the least time between the starts of two replays.
	// Default 10s.
	ReplayEvery time.Duration
	// ReplayRate is the most replayed requests published per second.
	// Default 100.
	ReplayRate float64
	// Totals reads this process's counts of recovered and dead-lettered
	// requests, API calls and retries (ops.Metrics.Totals: typed, never
	// read back from the metrics by name). nil = the page shows none.
	Totals func() ops.Totals
	// Ready reports the process's readiness (ops.Server.Ready). nil =
	// always ready.
	Ready func() error
	// Window is the span over which the drain rate (and so the ETA) is
	// computed. Default 30s.
	Window time.Duration
	// Refresh is the least time between two reads of the streams, whatever
	// the number of pages polling. Default 1s.
	Refresh time.Duration
	// Logger receives replays and failed reads. nil = no logs.
	Logger *zap.Logger
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

// Campaigns reads the campaigns. *admin.CampaignTracker implements it.
type Campaigns interface {
	// Progress returns the campaigns followed, reading only what is new.
	Progress(ctx context.Context) ([]admin.CampaignProgress, error)
	// Report is a campaign's report with every job, as `worker report
	// --json --jobs` gives it; producer.ErrNoCampaign for an unknown one.
	Report(ctx context.Context, name string) (*admin.CampaignReport, error)
}

// Backend is what the page reads once the process is wired.
type Backend struct {
	// Streams is required.
	Streams Streams
	// Live reads this process's state. nil = none shown.
	Live func() Live
	// Campaigns reads the campaigns. nil = none shown.
	Campaigns Campaigns
}

// Server serves the page and its API, on a listener of its own (the ops
// listener serves only health, readiness and metrics). It answers 503 on
// the API until Attach.
type Server struct {
	cfg     Config
	log     *zap.Logger
	mux     *http.ServeMux
	backend atomic.Pointer[Backend]

	mu      sync.Mutex // guards the fields below; held while reading the streams
	snap    *admin.Snapshot
	snapErr error
	snapAt  time.Time
	counts  ops.Totals
	win     window
	camps   []admin.CampaignProgress
	campErr error
	campWin map[string]*window // each campaign's finished requests over Window

	rmu       sync.Mutex
	replay    *replayState
	lastStart time.Time       // of the last replay started
	ctx       context.Context // replays run under it; Close cancels it
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New returns a Server; Attach gives it the streams.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Window <= 0 {
		cfg.Window = 30 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReplayMax <= 0 {
		cfg.ReplayMax = 1000
	}
	if cfg.ReplayEvery <= 0 {
		cfg.ReplayEvery = 10 * time.Second
	}
	if cfg.ReplayRate <= 0 {
		cfg.ReplayRate = 100
	}
	if cfg.Token == "" {
		cfg.Actions = false
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), win: window{span: cfg.Window}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	s.mux.Handle("GET /", headers(files, false))
	s.mux.Handle("GET /api/status", headers(http.HandlerFunc(s.status), true))
	s.mux.Handle("GET /api/deadletters", headers(http.HandlerFunc(s.deadLetters), true))
	s.mux.Handle("GET /api/campaigns/{name}/report", headers(http.HandlerFunc(s.campaignReport), true))
	s.mux.Handle("POST /api/replay", headers(http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.startReplay)), true))
	return s
}

// Attach gives the Server what it reads; until then the API answers 503.
func (s *Server) Attach(b Backend) { s.backend.Store(&b) }

// ServeHTTP serves the page and the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close cancels a running replay and waits for it (the dead letters whose
// replays were acknowledged are still removed).
func (s *Server) Close() {
	s.rmu.Lock() // a replay starting now either is waited for or sees the cancel
	s.cancel()
	s.rmu.Unlock()
	s.wg.Wait()
}

// headers sets what every answer carries: no framing, no sniffing, nothing
// loaded from elsewhere; API answers are never cached.
func headers(h http.Handler, api bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		if api {
			hd.Set("Cache-Control", "no-store")
		} else {
			hd.Set("Cache-Control", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}

// refresh reads the streams and the counters unless they were read less
// than Config.Refresh ago; callers share one read.
func (s *Server) refresh(ctx context.Context, b *Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if !s.snapAt.IsZero() && now.Sub(s.snapAt) < s.cfg.Refresh {
		return
	}
	// Shared by every page: one that goes away must not cancel the read.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	snap, err := b.Streams.Snapshot(ctx, s.snap)
	s.snapAt = s.cfg.Now()
	if err != nil {
		if s.snapErr == nil {
			s.log.Warn("status page: reading the streams failed", zap.Error(err))
		}
		s.snapErr = err
		return
	}
	s.snap, s.snapErr = snap, nil
	var c ops.Totals
	if s.cfg.Totals != nil {
		c = s.cfg.Totals()
	}
	s.counts = c
	s.win.add(sample{at: s.snapAt, backlog: float64(snap.Status.Stream.Messages), finished: float64(c.Finished()), calls: float64(c.Calls())})
	if b.Campaigns != nil {
		s.readCampaigns(ctx, b.Campaigns)
	}
}

// readCampaigns reads the campaigns' progress (only what is new since the
// last read) and adds a sample of each one's finished requests to its
// window; windows of campaigns no longer followed are dropped.
func (s *Server) readCampaigns(ctx context.Context, c Campaigns) {
	camps, err := c.Progress(ctx)
	if err != nil {
		if s.campErr == nil {
			s.log.Warn("status page: reading the campaigns failed", zap.Error(err))
		}
		s.campErr = err
		return
	}
	s.camps, s.campErr = camps, nil
	wins := make(map[string]*window, len(camps))
	for _, cp := range camps {
		w := s.campWin[cp.Campaign]
		if w == nil {
			w = &window{span: s.cfg.Window}
		}
		w.add(sample{at: s.snapAt, finished: float64(cp.Enqueued - cp.InFlight)})
		wins[cp.Campaign] = w
	}
	s.campWin = wins
}

// statusResponse is GET /api/status.
type statusResponse struct {
	Time time.Time `json:"time"`
	// Starting is set until the process is wired (connected to NATS,
	// consumer bound); nothing else is then known.
	Starting bool   `json:"starting,omitempty"`
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready,omitempty"`
	Actions  bool   `json:"actions"`
	// Error is the last failed read of the streams; the figures are then
	// those of the last good one.
	Error string `json:"error,omitempty"`
	// Status is `worker status --json`.
	Status *admin.Status `json:"status"`
	// Backlog is the requests stored and not finished (the request
	// stream's messages).
	Backlog uint64 `json:"backlog"`
	Drain   *drain `json:"drain"`
	// Process is this worker process: its totals since it started, its
	// rates over the last seconds, its state.
	Process *process     `json:"process"`
	Replay  *replayState `json:"replay"`
	// Campaigns are the campaigns followed (the most recently updated
	// first), with Active set on those still running or finished within
	// the last hour.
	Campaigns []campaign `json:"campaigns"`
	// CampaignsError is the last failed read of the campaigns.
	CampaignsError string `json:"campaigns_error,omitempty"`
}

// campaign is a campaign's progress as the page shows it.
type campaign struct {
	admin.CampaignProgress
	Active bool `json:"active"`
	// RatePerSecond is how fast its requests finish, fleet-wide, over the
	// page's window; ETASeconds is in flight / rate (null when nothing
	// finishes, 0 when none is in flight).
	RatePerSecond float64  `json:"rate_per_second"`
	ETASeconds    *float64 `json:"eta_seconds"`
	// Report is the path of its report (JSON; add ?format=csv for CSV).
	Report string `json:"report"`
}

// campaignActiveFor is how long a finished campaign stays active on the
// page.
const campaignActiveFor = time.Hour

type drain struct {
	// RatePerSecond is how fast the backlog shrinks (negative: it grows),
	// fleet-wide, over WindowSeconds.
	RatePerSecond float64 `json:"rate_per_second"`
	// ETASeconds is backlog / rate; null when the backlog is not
	// shrinking, 0 when it is empty.
	ETASeconds    *float64 `json:"eta_seconds"`
	WindowSeconds float64  `json:"window_seconds"`
}

type process struct {
	ops.Totals
	Live
	// FinishedPerSecond: requests recovered or dead-lettered by this
	// process per second, over the last 5s.
	FinishedPerSecond float64 `json:"finished_per_second"`
	// APICallsPerSecond: API calls per second over the last 5s.
	APICallsPerSecond float64 `json:"api_calls_per_second"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	resp := statusResponse{Time: s.cfg.Now().UTC(), Ready: true, Actions: s.cfg.Actions}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			resp.Ready, resp.NotReady = false, err.Error()
		}
	}
	resp.Replay = s.replayState()
	b := s.backend.Load()
	if b == nil {
		resp.Starting = true
		writeJSON(w, http.StatusOK, resp)
		return
	}
	s.refresh(r.Context(), b)
	s.mu.Lock()
	snap, snapErr, c := s.snap, s.snapErr, s.counts
	rate, span, ok := s.win.drainRate()
	finishedRate := s.win.recent(5*time.Second, func(x sample) float64 { return x.finished })
	callRate := s.win.recent(5*time.Second, func(x sample) float64 { return x.calls })
	resp.Campaigns = s.campaignViews(resp.Time)
	if s.campErr != nil {
		resp.CampaignsError = s.campErr.Error()
	}
	s.mu.Unlock()
	if snapErr != nil {
		resp.Error = snapErr.Error()
	}
	if snap != nil {
		st := snap.Status
		resp.Status = &st
		resp.Backlog = st.Stream.Messages
		d := &drain{WindowSeconds: span.Seconds()}
		switch {
		case resp.Backlog == 0:
			d.RatePerSecond = max(rate, 0)
			d.ETASeconds = new(float64)
		case ok:
			d.RatePerSecond = rate
			if rate > 0 {
				eta := float64(resp.Backlog) / rate
				d.ETASeconds = &eta
			}
		}
		resp.Drain = d
	}
	p := &process{Totals: c, FinishedPerSecond: finishedRate, APICallsPerSecond: callRate}
	if b.Live != nil {
		p.Live = b.Live()
	}
	if p.Breakers == nil {
		p.Breakers = map[string]retry.BreakerState{}
	}
	resp.Process = p
	writeJSON(w, http.StatusOK, resp)
}

// campaignViews is the campaigns with their rates; s.mu is held.
func (s *Server) campaignViews(now time.Time) []campaign {
	out := make([]campaign, 0, len(s.camps))
	for _, cp := range s.camps {
		v := campaign{CampaignProgress: cp, Report: "api/campaigns/" + url.PathEscape(cp.Campaign) + "/report"}
		last := cp.UpdatedAt
		if cp.LastResultAt.After(last) {
			last = cp.LastResultAt
		}
		v.Active = cp.InFlight > 0 || now.Sub(last) < campaignActiveFor
		if w := s.campWin[cp.Campaign]; w != nil {
			v.RatePerSecond = w.recent(s.cfg.Window, func(x sample) float64 { return x.finished })
		}
		switch {
		case cp.InFlight == 0:
			v.ETASeconds = new(float64)
		case v.RatePerSecond > 0:
			eta := float64(cp.InFlight) / v.RatePerSecond
			v.ETASeconds = &eta
		}
		out = append(out, v)
	}
	return out
}

// campaignReport is GET /api/campaigns/{name}/report[?format=csv]: the
// report `worker report --json --jobs` (or --csv) prints, read through
// Campaigns.Report, which bounds how often the streams are read for it.
func (s *Server) campaignReport(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Load()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "starting: connecting to NATS")
		return
	}
	if b.Campaigns == nil {
		writeError(w, http.StatusNotFound, "this page does not read campaigns")
		return
	}
	name := r.PathValue("name")
	if err := producer.ValidCampaign(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: json or csv", format))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	rep, err := b.Campaigns.Report(ctx, name)
	switch {
	case errors.Is(err, producer.ErrNoCampaign):
		writeError(w, http.StatusNotFound, fmt.Sprintf("campaign %q is not recorded", name))
		return
	case err != nil:
		s.log.Warn("status page: campaign report failed", zap.String("campaign", name), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "reading the campaign: "+errString(err))
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`-report.csv"`) // a campaign name is letters, digits, - _ = .
		if err := rep.WriteCSV(w); err != nil {
			s.log.Warn("status page: writing a campaign report", zap.String("campaign", name), zap.Error(err))
		}
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`-report.json"`)
	writeJSON(w, http.StatusOK, rep)
}

// deadLettersResponse is GET /api/deadletters.
type deadLettersResponse struct {
	Total   uint64 `json:"total"`
	LastSeq uint64 `json:"last_seq"`
	// Stale: the dead letters changed since these groups were read; a
	// rescan follows shortly.
	Stale   bool          `json:"stale,omitempty"`
	Groups  []admin.Group `json:"groups"`
	Actions bool          `json:"actions"`
	// ReplayMax is the most dead letters one replay from the page moves.
	ReplayMax int `json:"replay_max"`
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	b := s.backend.Load()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "starting: connecting to NATS")
		return
	}
	s.refresh(r.Context(), b)
	s.mu.Lock()
	snap, snapErr := s.snap, s.snapErr
	s.mu.Unlock()
	if snap == nil {
		writeError(w, http.StatusServiceUnavailable, "reading the dead letters: "+errString(snapErr))
		return
	}
	groups := snap.Groups
	if groups == nil {
		groups = []admin.Group{}
	}
	writeJSON(w, http.StatusOK, deadLettersResponse{
		Total: snap.Status.DLQ.Messages, LastSeq: snap.DLQLastSeq, Stale: snap.Stale, Groups: groups, Actions: s.cfg.Actions,
		ReplayMax: s.cfg.ReplayMax,
	})
}

// replayRequest is the body of POST /api/replay: one group the page
// showed, by its reason and error code ("" for a group without one), and
// the dead-letter stream's last sequence the page saw.
type replayRequest struct {
	Reason    string `json:"reason"`
	ErrorCode string `json:"error_code"`
	// UpToSeq bounds the replay to the dead letters the page showed: those
	// stored at or below it. Required.
	UpToSeq uint64 `json:"up_to_seq"`
}

// replayState is the page's replay, running or finished.
type replayState struct {
	Filter     admin.Filter         `json:"filter"`
	UpToSeq    uint64               `json:"up_to_seq"`
	Max        int                  `json:"max"`
	Running    bool                 `json:"running"`
	Selected   int                  `json:"selected"`
	Done       int                  `json:"done"`
	Summary    *admin.ReplaySummary `json:"summary,omitempty"`
	Error      string               `json:"error,omitempty"`
	StartedAt  time.Time            `json:"started_at"`
	FinishedAt time.Time            `json:"finished_at,omitzero"`
}

func (s *Server) replayState() *replayState {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.replay == nil {
		return nil
	}
	c := *s.replay
	return &c
}

func (s *Server) startReplay(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Actions {
		writeError(w, http.StatusForbidden, "read-only: replaying from this page needs --ui-actions and a token (--ui-token-file); or use 'worker dlq replay'")
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="codearts-recover-worker"`)
		writeError(w, http.StatusUnauthorized, "a valid bearer token is required (the content of the worker's --ui-token-file)")
		s.log.Warn("status page: replay refused: no valid token", zap.String("remote", r.RemoteAddr))
		return
	}
	if r.Header.Get(ActionHeader) == "" {
		writeError(w, http.StatusForbidden, "missing "+ActionHeader+" header")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	b := s.backend.Load()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "starting: connecting to NATS")
		return
	}
	var req replayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	s.refresh(r.Context(), b)
	g, code, msg := s.shownGroup(req)
	if code != 0 {
		writeError(w, code, msg)
		return
	}
	f := admin.Filter{Reasons: []string{g.Reason}, ErrorCodes: []string{g.ErrorCode}}
	bounds := admin.ReplayBounds{UpTo: req.UpToSeq, Max: min(g.Count, s.cfg.ReplayMax), Rate: s.cfg.ReplayRate}
	s.rmu.Lock()
	if s.ctx.Err() != nil {
		s.rmu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	if s.replay != nil && s.replay.Running {
		s.rmu.Unlock()
		writeError(w, http.StatusConflict, "a replay is running; wait for it to finish")
		return
	}
	now := s.cfg.Now()
	if wait := s.lastStart.Add(s.cfg.ReplayEvery).Sub(now); !s.lastStart.IsZero() && wait > 0 {
		s.rmu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("one replay every %s from this page; try again in %s", s.cfg.ReplayEvery, wait.Round(time.Second)))
		return
	}
	s.lastStart = now
	st := &replayState{Filter: f, UpToSeq: bounds.UpTo, Max: bounds.Max, Running: true, Selected: -1, StartedAt: now.UTC()}
	s.replay = st
	snapshot := *st
	s.wg.Add(1)
	s.rmu.Unlock()

	s.log.Info("status page: replay started", zap.String("reason", g.Reason), zap.String("error_code", g.ErrorCode),
		zap.Uint64("up_to_seq", bounds.UpTo), zap.Int("max", bounds.Max), zap.String("remote", r.RemoteAddr))
	go s.runReplay(b, st, bounds)
	writeJSON(w, http.StatusAccepted, map[string]any{"replay": snapshot})
}

// authorized reports whether r carries the bearer token. The comparison
// takes the same time whatever the token: both sides are hashed first.
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got, want := sha256.Sum256([]byte(strings.TrimSpace(tok))), sha256.Sum256([]byte(s.cfg.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// shownGroup finds the group a replay request names in the snapshot the
// page reads: exactly one reason and error code it showed, up to a
// sequence it saw. A code other than 0 refuses the request.
func (s *Server) shownGroup(req replayRequest) (admin.Group, int, string) {
	if req.Reason == "" {
		return admin.Group{}, http.StatusBadRequest, "say which group to replay: reason and error_code of a group the page shows; other selections are for 'worker dlq replay'"
	}
	if req.UpToSeq == 0 {
		return admin.Group{}, http.StatusBadRequest, "up_to_seq is required: the dead-letter stream's last sequence the page showed"
	}
	s.mu.Lock()
	snap := s.snap
	s.mu.Unlock()
	if snap == nil {
		return admin.Group{}, http.StatusServiceUnavailable, "the dead letters were not read yet"
	}
	if req.UpToSeq > snap.DLQLastSeq {
		return admin.Group{}, http.StatusBadRequest, fmt.Sprintf("up_to_seq %d is beyond the last dead letter the page can have shown (%d)", req.UpToSeq, snap.DLQLastSeq)
	}
	for _, g := range snap.Groups {
		if g.Reason == req.Reason && g.ErrorCode == req.ErrorCode && g.Reason != "unreadable" && g.Count > 0 {
			return g, 0, ""
		}
	}
	return admin.Group{}, http.StatusConflict, fmt.Sprintf("no group %s/%s on the page (replayed or expired meanwhile?); reload and choose again", req.Reason, req.ErrorCode)
}

func (s *Server) runReplay(b *Backend, st *replayState, bounds admin.ReplayBounds) {
	defer s.wg.Done()
	sum, err := b.Streams.Replay(s.ctx, st.Filter, bounds,
		func(n int) {
			s.rmu.Lock()
			st.Selected = n
			s.rmu.Unlock()
		},
		func(done int) {
			s.rmu.Lock()
			st.Done = done
			s.rmu.Unlock()
		})
	s.rmu.Lock()
	st.Running = false
	st.Summary = &sum
	st.FinishedAt = s.cfg.Now().UTC()
	if err != nil {
		st.Error = err.Error()
	}
	s.rmu.Unlock()
	// The next poll must see the dead letters leave.
	s.mu.Lock()
	s.snapAt = time.Time{}
	s.mu.Unlock()
	fields := []zap.Field{zap.Int("matched", sum.Matched), zap.Int("replayed", sum.Replayed),
		zap.Int("already_replayed", sum.AlreadyReplayed), zap.Int("failed", sum.Failed), zap.Int("gone", sum.Gone)}
	if err != nil {
		s.log.Error("status page: replay failed", append(fields, zap.Error(err))...)
		return
	}
	s.log.Info("status page: replay finished", fields...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func errString(err error) string {
	if err == nil {
		return "no read yet"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}
