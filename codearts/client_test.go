package codearts

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testAK = "HPUATESTACCESSKEY0001"
	testSK = "testSecretKey0123456789abcdefghijklmnopq"
	jobA   = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
	jobB   = "0123456789abcdef0123456789ABCDEF"
)

// testBundle holds setup's collaborators.
type testBundle struct {
	sim *codeartssim.Server
	cfg Config
}

// setup starts a simulator requiring testAK/testSK and a client for it;
// mod adjusts the client's config.
func setup(t testing.TB, mod func(*Config), opts ...codeartssim.Option) (*Client, *testBundle) {
	t.Helper()
	sim := codeartssim.New(append([]codeartssim.Option{codeartssim.WithCredentials(testAK, testSK)}, opts...)...)
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, sim.Close()) })

	cfg := Config{
		Endpoint:    sim.URL(),
		ProjectID:   "0123456789abcdef0123456789abcdef",
		Credentials: Credentials{AK: testAK, SK: testSK},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c, &testBundle{sim: sim, cfg: cfg}
}

// retryable is the interface package retry declares for API errors.
type retryable interface {
	HTTPStatus() int
	APIErrorCode() string
	RetryAfterHint() time.Duration
}

var _ retryable = (*APIError)(nil)

func TestRecover(t *testing.T) {
	c, b := setup(t, nil)
	reqID, err := c.Recover(context.Background(), jobA, "")
	require.NoError(t, err)
	require.Len(t, reqID, 32)
	require.Equal(t, 1, b.sim.Recovered(jobA))
}

func TestRecoverAPIError(t *testing.T) {
	tests := []struct {
		name    string
		give    []codeartssim.Option
		giveJob string
		want    APIError // RequestID is checked separately
		wantMsg string   // in Error()
	}{
		{
			name: "not found", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "404" + jobA[3:],
			want:    APIError{StatusCode: 404, ErrorCode: "CB.00060214", ErrorMsg: "The build job does not exist"},
			wantMsg: "recover 404fa20de5fd4cf8be681d4bd6fdd2f6: codearts: 404 CB.00060214: The build job does not exist (request_id ",
		},
		{
			name: "gateway throttle", give: []codeartssim.Option{codeartssim.WithThrottle(1), codeartssim.WithRetryAfter(7 * time.Second)}, giveJob: jobA,
			want:    APIError{StatusCode: 429, ErrorCode: "APIG.0308", ErrorMsg: codeartssim.StandardOutcome(429).Msg, RetryAfter: 7 * time.Second},
			wantMsg: "codearts: 429 APIG.0308: The throttling threshold",
		},
		{
			name: "backend throttle", give: []codeartssim.Option{codeartssim.WithBackendThrottle(1)}, giveJob: jobA,
			want:    APIError{StatusCode: 500, ErrorCode: "CB.00060211", ErrorMsg: "Too many requests"},
			wantMsg: "codearts: 500 CB.00060211: Too many requests",
		},
		{
			name: "outage", give: []codeartssim.Option{codeartssim.WithOutage(true)}, giveJob: jobA,
			want:    APIError{StatusCode: 503, ErrorCode: "APIG.0613", ErrorMsg: codeartssim.StandardOutcome(503).Msg},
			wantMsg: "codearts: 503 APIG.0613: " + codeartssim.StandardOutcome(503).Msg,
		},
		{
			name: "wrong credentials", give: []codeartssim.Option{codeartssim.WithCredentials(testAK, "another secret")}, giveJob: jobA,
			want:    APIError{StatusCode: 401, ErrorCode: "APIG.0301", ErrorMsg: "Incorrect IAM authentication information: verify aksk signature fail"},
			wantMsg: "codearts: 401 APIG.0301",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b := setup(t, nil, tt.give...)
			reqID, err := c.Recover(context.Background(), tt.giveJob, "")
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantMsg)
			require.NotContains(t, err.Error(), testSK)

			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Len(t, ae.RequestID, 32)
			require.Equal(t, ae.RequestID, reqID)
			got := *ae
			got.RequestID = ""
			require.Equal(t, tt.want, got)

			var r retryable
			require.ErrorAs(t, err, &r)
			require.Equal(t, tt.want.StatusCode, r.HTTPStatus())
			require.Equal(t, tt.want.ErrorCode, r.APIErrorCode())
			require.Equal(t, tt.want.RetryAfter, r.RetryAfterHint())
			require.Equal(t, int64(1), b.sim.Stats().Calls, "the SDK must not retry")
		})
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	at := time.Now().Add(90 * time.Second).UTC()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", at.Format(http.TimeFormat))
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`<html>busy</html>`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Endpoint: srv.URL, Credentials: Credentials{AK: testAK, SK: testSK}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })

	_, err = c.Recover(context.Background(), jobA, "")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 503, ae.StatusCode)
	require.Equal(t, "req-1", ae.RequestID)
	require.Equal(t, "busy", ae.ErrorMsg, "an HTML body is kept as its text, without markup")
	require.InDelta(t, 90*time.Second, ae.RetryAfter, float64(5*time.Second))
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		give string
		want time.Duration
	}{
		{give: "", want: 0},
		{give: "3", want: 3 * time.Second},
		{give: " 120 ", want: 2 * time.Minute},
		{give: "0", want: 0},
		{give: "-5", want: 0},
		{give: "999999999999", want: 24 * time.Hour},
		{give: now.Add(30 * time.Second).Format(http.TimeFormat), want: 30 * time.Second},
		{give: now.Add(-30 * time.Second).Format(http.TimeFormat), want: 0},
		{give: "soon", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			require.Equal(t, tt.want, parseRetryAfter(tt.give, now))
		})
	}
}

func TestCorrelationHeaderNotSent(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("X-Request-Id", "abc")
		_, _ = w.Write([]byte(`{"status":"success"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Endpoint: srv.URL, Credentials: Credentials{AK: testAK, SK: testSK}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })

	reqID, err := c.Recover(context.Background(), jobA, "")
	require.NoError(t, err)
	require.Equal(t, "abc", reqID)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, got.Get("Authorization"))
	for k := range got {
		require.NotContains(t, k, "_", "header %s leaked", k)
	}
	require.NotContains(t, got.Get("Authorization"), "x_codearts_call")
}

func TestRecoverTimeout(t *testing.T) {
	c, b := setup(t, func(cfg *Config) { cfg.Timeout = 100 * time.Millisecond },
		codeartssim.WithLatency(time.Hour, 0))

	_, err := c.Recover(context.Background(), jobA, "")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	require.Contains(t, err.Error(), "recover "+jobA)
	// The server saw the request end: the HTTP request was really aborted.
	require.Eventually(t, func() bool { return b.sim.Stats().Abandoned == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Zero(t, b.sim.Recovered(jobA))
}

func TestRecoverParentDeadline(t *testing.T) {
	c, _ := setup(t, nil, codeartssim.WithLatency(time.Hour, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Recover(ctx, jobA, "")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRecoverCancel(t *testing.T) {
	c, b := setup(t, nil, codeartssim.WithLatency(time.Hour, 0))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Recover(ctx, jobA, "")
		errc <- err
	}()
	require.Eventually(t, func() bool { return b.sim.Stats().Calls == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	require.Eventually(t, func() bool { return b.sim.Stats().Abandoned == 1 }, 5*time.Second, 5*time.Millisecond)
}

func TestRecoverAlreadyCancelled(t *testing.T) {
	c, b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Recover(ctx, jobA, "")
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, b.sim.Stats().Calls)
}

func TestRecoverTransportError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	c, err := NewClient(Config{Endpoint: "http://" + addr, Credentials: Credentials{AK: testAK, SK: testSK}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })

	_, err = c.Recover(context.Background(), jobA, "")
	require.Error(t, err)
	var opErr *net.OpError
	require.ErrorAs(t, err, &opErr)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	var ae *APIError
	require.False(t, errors.As(err, &ae))
	require.Contains(t, err.Error(), "recover "+jobA+": ")
}

func TestRecoverRejectsBeforeSending(t *testing.T) {
	tests := []struct {
		name       string
		giveJob    string
		giveRegion string
		wantErr    error
	}{
		{name: "unknown region", giveJob: jobA, giveRegion: "xx-nowhere-1", wantErr: ErrUnknownRegion},
		{name: "real region not allowed", giveJob: jobA, giveRegion: "cn-south-1", wantErr: ErrUnknownRegion},
		{name: "short job id", giveJob: "abc", wantErr: ErrInvalidJobID},
		{name: "path in job id", giveJob: "../../../v3/jobs/x/delete/aaaaaa", wantErr: ErrInvalidJobID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b := setup(t, nil)
			_, err := c.Recover(context.Background(), tt.giveJob, tt.giveRegion)
			require.ErrorIs(t, err, tt.wantErr)
			require.Zero(t, b.sim.Stats().Calls)
		})
	}
}

func TestAllowedRegion(t *testing.T) {
	c, _ := setup(t, func(cfg *Config) { cfg.Regions = []string{"cn-east-3", "ap-southeast-3"} })
	tests := []struct {
		give string
		want bool
	}{
		{give: "", want: true},
		{give: DefaultRegion, want: true},
		{give: "cn-east-3", want: true},
		{give: "ap-southeast-3", want: true},
		{give: "cn-south-1", want: false},
		{give: "CN-EAST-3", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			require.Equal(t, tt.want, c.AllowedRegion(tt.give))
		})
	}
	require.ElementsMatch(t, []string{DefaultRegion, "cn-east-3", "ap-southeast-3"}, c.Regions())
	require.Equal(t, DefaultRegion, c.Regions()[0])
}

func TestOneSDKClientPerRegion(t *testing.T) {
	c, b := setup(t, func(cfg *Config) { cfg.Regions = []string{"cn-east-3"} })

	var wg sync.WaitGroup
	for i := range 16 {
		region := []string{"", "cn-east-3"}[i%2]
		wg.Go(func() {
			_, err := c.Recover(context.Background(), jobA, region)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, 16, b.sim.Recovered(jobA))

	c.mu.RLock()
	require.Len(t, c.clients, 2)
	c.mu.RUnlock()
	north1, err := c.sdkClient(DefaultRegion)
	require.NoError(t, err)
	north2, err := c.sdkClient(DefaultRegion)
	require.NoError(t, err)
	east, err := c.sdkClient("cn-east-3")
	require.NoError(t, err)
	require.Same(t, north1, north2)
	require.NotSame(t, north1, east)

	// New credentials: new SDK clients.
	require.NoError(t, c.SetCredentials(Credentials{AK: testAK, SK: testSK}))
	north3, err := c.sdkClient(DefaultRegion)
	require.NoError(t, err)
	require.NotSame(t, north1, north3)
}

func TestNoSDKRetries(t *testing.T) {
	c, b := setup(t, nil)
	b.sim.Script(jobA, 503, 502)
	_, err := c.Recover(context.Background(), jobA, "")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 503, ae.StatusCode)
	require.Equal(t, int64(1), b.sim.Stats().Jobs[jobA].Calls)
}

func TestValidJobID(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{give: jobA, want: true},
		{give: jobB, want: true},
		{give: jobA[:31]},
		{give: jobA + "0"},
		{give: jobA[:31] + "-"},
		{give: jobA[:30] + "é"},
		{give: ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			require.Equal(t, tt.want, ValidJobID(tt.give))
		})
	}
}
