package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// fakeStreams serves scripted snapshots and records replays.
type fakeStreams struct {
	mu      sync.Mutex
	backlog uint64
	reads   int
	groups  []admin.Group
	replays []replayCall
	release chan struct{} // when set, a replay waits for it
}

func (f *fakeStreams) Snapshot(_ context.Context, _ *admin.Snapshot) (*admin.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return &admin.Snapshot{
		Status: admin.Status{
			Stream: admin.StreamStatus{Name: "CODEARTS_RECOVER", Subjects: []string{"codearts.build.recover"}, Messages: f.backlog},
			DLQ:    admin.DLQStatus{Name: "CODEARTS_RECOVER_DLQ", Messages: 12, ByReason: map[string]int{"client_error": 12}},
		},
		Groups: f.groups, DLQLastSeq: 40,
	}, nil
}

// replayCall is one call of Streams.Replay.
type replayCall struct {
	Filter admin.Filter
	Bounds admin.ReplayBounds
}

func (f *fakeStreams) Replay(_ context.Context, flt admin.Filter, b admin.ReplayBounds, selected, progress func(int)) (admin.ReplaySummary, error) {
	f.mu.Lock()
	f.replays = append(f.replays, replayCall{Filter: flt, Bounds: b})
	release := f.release
	f.mu.Unlock()
	if release != nil {
		<-release
	}
	selected(12)
	progress(12)
	return admin.ReplaySummary{Matched: 12, Replayed: 12}, nil
}

func (f *fakeStreams) setBacklog(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backlog = n
}

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type bundle struct {
	srv     *Server
	streams *fakeStreams
	clock   *clock
	metrics *ops.Metrics
	url     string
}

// testToken is the replay token of setup's servers with actions.
const testToken = "0123456789abcdef-test-token"

func setup(t *testing.T, actions bool, opts ...func(*Config)) *bundle {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := ops.NewMetrics(reg)
	require.NoError(t, err)
	b := &bundle{
		streams: &fakeStreams{groups: []admin.Group{{Reason: "client_error", ErrorCode: "CB.00060214", Count: 12, Statuses: map[string]int{"404": 12}}}},
		clock:   &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		metrics: m,
	}
	cfg := Config{Actions: actions, Token: testToken, Totals: m.Totals, Now: b.clock.Now, Window: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	b.srv = New(cfg)
	hs := httptest.NewServer(b.srv)
	t.Cleanup(func() {
		hs.Close()
		b.srv.Close()
	})
	b.url = hs.URL
	return b
}

func (b *bundle) attach() {
	b.srv.Attach(Backend{Streams: b.streams, Live: func() Live {
		return Live{InFlight: 3, Concurrency: 32, RateLimit: 40, RateLimitMax: 50, Paused: true, PauseReason: "401 from the API",
			Breakers: map[string]retry.BreakerState{"cn-north-4": retry.BreakerOpen}}
	}})
}

func get(t *testing.T, url string, v any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if v != nil {
		require.NoError(t, json.Unmarshal(body, v), string(body))
	}
	return resp.StatusCode, resp.Header
}

func TestStatusBeforeAttachSaysStarting(t *testing.T) {
	b := setup(t, false)
	var got statusResponse
	code, h := get(t, b.url+"/api/status", &got)
	require.Equal(t, http.StatusOK, code)
	require.True(t, got.Starting)
	require.Nil(t, got.Status)
	require.Equal(t, "no-store", h.Get("Cache-Control"))
	code, _ = get(t, b.url+"/api/deadletters", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
}

// The drain rate is the backlog's slope over the window; the ETA follows
// from it; the counts are the metrics'; the live state is passed through.
func TestStatusFigures(t *testing.T) {
	b := setup(t, false)
	b.attach()
	b.metrics.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered})
	b.metrics.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered})
	b.metrics.Outcome(worker.Outcome{Kind: worker.OutcomeDeadLettered, Reason: worker.ReasonClientError})
	b.metrics.Call(worker.Call{Status: 200, Class: "success"})
	b.metrics.Call(worker.Call{Status: 200, Class: "success"})
	b.metrics.Call(worker.Call{Status: 404, Class: "client_error"})
	b.metrics.Call(worker.Call{Status: 0, Class: "transient"})

	var got statusResponse
	for i, backlog := range []uint64{100, 80, 60, 40} {
		if i > 0 {
			b.clock.advance(2 * time.Second)
		}
		b.streams.setBacklog(backlog)
		get(t, b.url+"/api/status", &got)
	}
	require.False(t, got.Starting)
	require.EqualValues(t, 40, got.Backlog)
	require.EqualValues(t, 40, got.Status.Stream.Messages)
	require.InDelta(t, 10, got.Drain.RatePerSecond, 1e-9)
	require.NotNil(t, got.Drain.ETASeconds)
	require.InDelta(t, 4, *got.Drain.ETASeconds, 1e-9)
	require.InDelta(t, 6, got.Drain.WindowSeconds, 1e-9)
	p := got.Process
	require.EqualValues(t, 2, p.Recovered)
	require.EqualValues(t, map[string]int64{"client_error": 1, "invalid_request": 0, "retries_exhausted": 0, "max_deliveries": 0, "not_recovered": 0}, p.DeadLettered)
	require.EqualValues(t, map[string]int64{"200": 2, "404": 1, "error": 1}, p.APICalls)
	require.Equal(t, Live{InFlight: 3, Concurrency: 32, RateLimit: 40, RateLimitMax: 50, Paused: true, PauseReason: "401 from the API",
		Breakers: map[string]retry.BreakerState{"cn-north-4": retry.BreakerOpen}}, p.Live)

	// Reads are shared: a second poll within Refresh reads nothing new.
	reads := b.streams.reads
	get(t, b.url+"/api/status", &got)
	get(t, b.url+"/api/deadletters", nil)
	require.Equal(t, reads, b.streams.reads)

	// A growing backlog has no ETA; an empty one is drained.
	for _, backlog := range []uint64{60, 90, 120} {
		b.clock.advance(20 * time.Second)
		b.streams.setBacklog(backlog)
		get(t, b.url+"/api/status", &got)
	}
	require.Less(t, got.Drain.RatePerSecond, 0.0)
	require.Nil(t, got.Drain.ETASeconds)
	b.clock.advance(2 * time.Second)
	b.streams.setBacklog(0)
	get(t, b.url+"/api/status", &got)
	require.NotNil(t, got.Drain.ETASeconds)
	require.Zero(t, *got.Drain.ETASeconds)
}

func TestDeadLetterGroups(t *testing.T) {
	b := setup(t, true)
	b.attach()
	var got deadLettersResponse
	code, _ := get(t, b.url+"/api/deadletters", &got)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, deadLettersResponse{Total: 12, LastSeq: 40, Actions: true, ReplayMax: 1000, Groups: b.streams.groups}, got)
}

func TestPageIsServedWithItsAssets(t *testing.T) {
	b := setup(t, false)
	for _, tt := range []struct {
		givePath string
		wantType string
		wantBody string
	}{
		{"/", "text/html", "<title>CodeArts recover worker</title>"},
		{"/app.js", "text/javascript", "api/status"},
		{"/style.css", "text/css", "--accent"},
	} {
		resp, err := http.Get(b.url + tt.givePath)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, tt.givePath)
		require.Contains(t, resp.Header.Get("Content-Type"), tt.wantType)
		require.Contains(t, string(body), tt.wantBody)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	}
	code, _ := get(t, b.url+"/nothing-here", nil)
	require.Equal(t, http.StatusNotFound, code)
}

func postReplay(t *testing.T, url string, body string, h map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/api/replay", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(out)
}

var pageHeaders = map[string]string{"Content-Type": "application/json", ActionHeader: "replay", "Authorization": "Bearer " + testToken}

// goodReplay is the page's request for the group setup shows.
const goodReplay = `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":40}`

func TestReplayRefused(t *testing.T) {
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for k, v := range pageHeaders {
			h[k] = v
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	noToken := func(c *Config) { c.Token = "" }
	tests := []struct {
		name        string
		giveActions bool
		giveConfig  func(*Config)
		giveBody    string
		giveHeader  map[string]string
		wantCode    int
		wantErr     string
	}{
		{"read-only", false, nil, goodReplay, pageHeaders, http.StatusForbidden, "read-only"},
		{"actions without a token file stay read-only", true, noToken, goodReplay, with("Authorization", ""), http.StatusForbidden, "read-only"},
		{"no token", true, nil, goodReplay, with("Authorization", ""), http.StatusUnauthorized, "bearer token"},
		{"wrong token", true, nil, goodReplay, with("Authorization", "Bearer "+testToken+"x"), http.StatusUnauthorized, "bearer token"},
		{"token as basic auth", true, nil, goodReplay, with("Authorization", "Basic "+testToken), http.StatusUnauthorized, "bearer token"},
		{"no action header (a plain form post)", true, nil, goodReplay, with(ActionHeader, ""), http.StatusForbidden, "X-Recover-Action"},
		{"not JSON", true, nil, goodReplay, with("Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "application/json"},
		{"cross-site", true, nil, goodReplay, with("Sec-Fetch-Site", "cross-site"), http.StatusForbidden, ""},
		{"other origin", true, nil, goodReplay, with("Origin", "https://evil.example"), http.StatusForbidden, ""},
		{"a filter of everything", true, nil, `{"filter":{"since":"100000d"}}`, pageHeaders, http.StatusBadRequest, "unknown field"},
		{"no group", true, nil, `{"up_to_seq":40}`, pageHeaders, http.StatusBadRequest, "say which group"},
		{"a reason alone (two groups' worth)", true, nil, `{"reason":"client_error","up_to_seq":40}`, pageHeaders, http.StatusConflict, "no group client_error/"},
		{"a group the page did not show", true, nil, `{"reason":"client_error","error_code":"CB.00060200","up_to_seq":40}`, pageHeaders, http.StatusConflict, "no group"},
		{"no sequence", true, nil, `{"reason":"client_error","error_code":"CB.00060214"}`, pageHeaders, http.StatusBadRequest, "up_to_seq is required"},
		{"a sequence the page never saw", true, nil, `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":41}`, pageHeaders, http.StatusBadRequest, "beyond the last dead letter"},
		{"unknown field", true, nil, `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":40,"all":true}`, pageHeaders, http.StatusBadRequest, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*Config)
			if tt.giveConfig != nil {
				opts = append(opts, tt.giveConfig)
			}
			b := setup(t, tt.giveActions, opts...)
			b.attach()
			code, body := postReplay(t, b.url, tt.giveBody, tt.giveHeader)
			require.Equal(t, tt.wantCode, code, body)
			require.Contains(t, body, tt.wantErr)
			require.Empty(t, b.streams.replays, "nothing replayed")
			var st statusResponse
			get(t, b.url+"/api/status", &st)
			require.Equal(t, tt.giveActions && tt.giveConfig == nil, st.Actions, "the page offers actions only with a token")
		})
	}
}

// A replay runs in the background, one at a time; the status shows it.
func TestReplayRunsOnce(t *testing.T) {
	b := setup(t, true)
	b.attach()
	release := make(chan struct{})
	b.streams.release = release
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // a failed assertion must not leave the replay (and the server's Close) waiting forever
	code, out := postReplay(t, b.url, goodReplay, pageHeaders)
	require.Equal(t, http.StatusAccepted, code, out)
	b.clock.advance(time.Minute) // the rate bound is not what refuses the second
	code, out = postReplay(t, b.url, goodReplay, pageHeaders)
	require.Equal(t, http.StatusConflict, code, out)
	var got statusResponse
	get(t, b.url+"/api/status", &got)
	require.True(t, got.Replay.Running)
	free()

	require.Eventually(t, func() bool {
		get(t, b.url+"/api/status", &got)
		return !got.Replay.Running
	}, 10*time.Second, 5*time.Millisecond, "the replay finishes")
	require.Equal(t, &admin.ReplaySummary{Matched: 12, Replayed: 12}, got.Replay.Summary)
	require.Equal(t, 12, got.Replay.Done)
	require.Equal(t, []replayCall{{
		Filter: admin.Filter{Reasons: []string{"client_error"}, ErrorCodes: []string{"CB.00060214"}},
		Bounds: admin.ReplayBounds{UpTo: 40, Max: 12, Rate: 100},
	}}, b.streams.replays)
}

// Replays from the page are bounded in count (ReplayMax, and never more
// than the group the page showed) and in rate (one start per ReplayEvery).
func TestReplayBounds(t *testing.T) {
	b := setup(t, true, func(c *Config) { c.ReplayMax = 5; c.ReplayEvery = 30 * time.Second; c.ReplayRate = 20 })
	b.attach()
	finished := func() bool {
		var got statusResponse
		get(t, b.url+"/api/status", &got)
		return got.Replay != nil && !got.Replay.Running
	}
	code, out := postReplay(t, b.url, goodReplay, pageHeaders)
	require.Equal(t, http.StatusAccepted, code, out)
	require.Eventually(t, finished, 10*time.Second, 5*time.Millisecond, "the replay finishes")

	b.clock.advance(29 * time.Second)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, b.url+"/api/replay", strings.NewReader(goodReplay))
	require.NoError(t, err)
	for k, v := range pageHeaders {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "a second replay within ReplayEvery")
	require.Equal(t, "1", resp.Header.Get("Retry-After"))

	b.clock.advance(time.Second)
	code, out = postReplay(t, b.url, goodReplay, pageHeaders)
	require.Equal(t, http.StatusAccepted, code, out)
	require.Eventually(t, finished, 10*time.Second, 5*time.Millisecond, "the second replay finishes")

	b.streams.mu.Lock()
	defer b.streams.mu.Unlock()
	require.Len(t, b.streams.replays, 2)
	for _, r := range b.streams.replays {
		require.Equal(t, admin.ReplayBounds{UpTo: 40, Max: 5, Rate: 20}, r.Bounds, "at most ReplayMax of the group of 12")
	}
}

// fakeCampaigns serves one campaign whose requests finish as set, and
// counts the reports read.
type fakeCampaigns struct {
	mu       sync.Mutex
	inFlight int64
	reports  int
}

func (f *fakeCampaigns) Progress(context.Context) ([]admin.CampaignProgress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	return []admin.CampaignProgress{{CampaignReport: admin.CampaignReport{
		Campaign: "outage-1", StartedAt: start, Enqueued: 1000, Recovered: 1000 - f.inFlight - 5, DeadLettered: 5, InFlight: f.inFlight,
	}, UpdatedAt: start}}, nil
}

func (f *fakeCampaigns) Report(_ context.Context, name string) (*admin.CampaignReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports++
	if name != "outage-1" {
		return nil, producer.ErrNoCampaign
	}
	return &admin.CampaignReport{Campaign: name, Enqueued: 2, Recovered: 1, InFlight: 1, Jobs: []admin.JobOutcome{
		{JobID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9", Outcome: "recovered", Status: 200, Attempts: 1, StreamSeq: 3},
		{JobID: "1b2c3d4e5f60718293a4b5c6d7e8f90a", Outcome: "in_flight", StreamSeq: 4},
	}}, nil
}

func (f *fakeCampaigns) set(inFlight int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight = inFlight
}

// The page shows each campaign with its progress, a rate of its finished
// requests and an ETA, and links to its report; the report downloads as
// JSON or CSV, read-only, without a token.
func TestCampaignsOnThePage(t *testing.T) {
	b := setup(t, false)
	camps := &fakeCampaigns{inFlight: 900}
	b.srv.Attach(Backend{Streams: b.streams, Campaigns: camps})

	var got statusResponse
	for i, inFlight := range []int64{900, 880, 860} {
		if i > 0 {
			b.clock.advance(2 * time.Second)
		}
		camps.set(inFlight)
		get(t, b.url+"/api/status", &got)
	}
	require.Len(t, got.Campaigns, 1)
	c := got.Campaigns[0]
	require.Equal(t, "outage-1", c.Campaign)
	require.True(t, c.Active)
	require.EqualValues(t, 860, c.InFlight)
	require.EqualValues(t, 135, c.Recovered)
	require.InDelta(t, 10, c.RatePerSecond, 1e-9, "40 finished in 4 s")
	require.NotNil(t, c.ETASeconds)
	require.InDelta(t, 86, *c.ETASeconds, 1e-9)
	require.Equal(t, "api/campaigns/outage-1/report", c.Report)

	var rep admin.CampaignReport
	code, h := get(t, b.url+"/"+c.Report, &rep)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, h.Get("Content-Disposition"), `filename="outage-1-report.json"`)
	require.Len(t, rep.Jobs, 2)

	resp, err := http.Get(b.url + "/" + c.Report + "?format=csv")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, "job_id,outcome,verified,reason,status,error_code,request_id,attempts,at,stream_seq\n"+
		"0a1b2c3d4e5f60718293a4b5c6d7e8f9,recovered,false,,200,,,1,,3\n"+
		"1b2c3d4e5f60718293a4b5c6d7e8f90a,in_flight,false,,,,,0,,4\n", string(body))

	for _, tt := range []struct {
		givePath string
		wantCode int
	}{
		{"/api/campaigns/nope/report", http.StatusNotFound},
		{"/api/campaigns/bad%20name/report", http.StatusBadRequest},
		{"/api/campaigns/outage-1/report?format=xml", http.StatusBadRequest},
	} {
		var e map[string]string
		code, _ := get(t, b.url+tt.givePath, &e)
		require.Equal(t, tt.wantCode, code, tt.givePath)
		require.NotEmpty(t, e["error"])
	}
	resp, err = http.Post(b.url+"/"+c.Report, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "read-only")

	// Done: ETA 0.
	b.clock.advance(2 * time.Second)
	camps.set(0)
	get(t, b.url+"/api/status", &got)
	require.NotNil(t, got.Campaigns[0].ETASeconds)
	require.Zero(t, *got.Campaigns[0].ETASeconds)
}
