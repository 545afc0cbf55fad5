package codeartssim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// apiErr runs one recover through the codearts client and returns its
// *APIError (nil on success).
func apiErr(t *testing.T, c *codearts.Client, jobID string) *codearts.APIError {
	t.Helper()
	_, err := c.Recover(context.Background(), jobID, "")
	if err == nil {
		return nil
	}
	var ae *codearts.APIError
	require.ErrorAs(t, err, &ae)
	return ae
}

func TestSignatureAccepted(t *testing.T) {
	sim, b := setup(t)

	reqID, err := b.client.Recover(context.Background(), jobA, "")
	require.NoError(t, err)
	require.Len(t, reqID, 32)

	raw := rawSDKClient(t, sim.URL(), testAK, testSK, nil)
	resp, err := raw.EnableBuildJob(&model.EnableBuildJobRequest{JobId: jobA})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.HttpStatusCode)
	require.Equal(t, "success", *resp.Status)

	require.Equal(t, 2, sim.Recovered(jobA))
}

func TestSignatureRejected(t *testing.T) {
	tests := []struct {
		name    string
		giveAK  string
		giveSK  string
		give    func(*http.Request)
		wantOK  bool
		wantMsg string
	}{
		{name: "wrong SK", giveSK: "not-the-secret", wantMsg: "verify aksk signature fail"},
		{name: "wrong AK", giveAK: "HPUAOTHERACCESSKEY99", wantMsg: "unknown access key"},
		{name: "path changed", give: func(r *http.Request) { r.URL.Path = "/v3/jobs/" + jobB + "/recover" }},
		{name: "signed header changed", give: func(r *http.Request) { r.Header.Set("X-Project-Id", "ffffffffffffffffffffffffffffffff") }},
		{name: "body added", give: func(r *http.Request) {
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(`{"x":1}`)), 7
		}},
		{name: "query added", give: func(r *http.Request) { r.URL.RawQuery = "force=true" }},
		{name: "date removed", give: func(r *http.Request) { r.Header.Del("X-Sdk-Date") }, wantMsg: "X-Sdk-Date"},
		{name: "authorization removed", give: func(r *http.Request) { r.Header.Del("Authorization") }, wantMsg: "no Authorization"},
		{name: "signature truncated", give: func(r *http.Request) {
			r.Header.Set("Authorization", strings.TrimSuffix(r.Header.Get("Authorization"), "0")+"1")
		}},
		{name: "unsigned header added", give: func(r *http.Request) { r.Header.Set("X-Extra", "1") }, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t)
			ak, sk := testAK, testSK
			if tt.giveAK != "" {
				ak = tt.giveAK
			}
			if tt.giveSK != "" {
				sk = tt.giveSK
			}
			raw := rawSDKClient(t, sim.URL(), ak, sk, tt.give)

			_, err := raw.EnableBuildJob(&model.EnableBuildJobRequest{JobId: jobA})
			if tt.wantOK {
				require.NoError(t, err)
				require.Equal(t, 1, sim.Recovered(jobA))
				return
			}
			var sre *sdkerr.ServiceResponseError
			require.ErrorAs(t, err, &sre)
			require.Equal(t, http.StatusUnauthorized, sre.StatusCode)
			require.Equal(t, codeartssim.CodeAuthFailed, sre.ErrorCode)
			require.Contains(t, sre.ErrorMessage, tt.wantMsg)
			require.NotContains(t, sre.ErrorMessage, testSK)
			require.NotEmpty(t, sre.RequestId)
			require.Zero(t, sim.Recovered(jobA)+sim.Recovered(jobB))
			require.Equal(t, int64(1), sim.Stats().ByStatus[http.StatusUnauthorized])
		})
	}
}

func TestSignatureClockSkew(t *testing.T) {
	tests := []struct {
		name   string
		give   time.Duration // X-Sdk-Date relative to now
		wantOK bool
	}{
		{name: "now", give: 0, wantOK: true},
		{name: "10 minutes behind", give: -10 * time.Minute, wantOK: true},
		{name: "20 minutes behind", give: -20 * time.Minute},
		{name: "20 minutes ahead", give: 20 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t)
			raw := rawSDKClient(t, sim.URL(), testAK, testSK, nil)
			inv := raw.EnableBuildJobInvoker(&model.EnableBuildJobRequest{JobId: jobA})
			// The SDK signs with a preset X-Sdk-Date, so the signature is
			// valid and only the date is off.
			inv.AddHeaders(map[string]string{signer.HeaderXDate: time.Now().Add(tt.give).UTC().Format(signer.BasicDateFormat)})
			_, err := inv.Invoke()
			if tt.wantOK {
				require.NoError(t, err)
				return
			}
			var sre *sdkerr.ServiceResponseError
			require.ErrorAs(t, err, &sre)
			require.Equal(t, http.StatusUnauthorized, sre.StatusCode)
			require.Contains(t, sre.ErrorMessage, "too far from the server time")
		})
	}
}

func TestTokenAuth(t *testing.T) {
	tests := []struct {
		name       string
		giveHeader http.Header
		wantStatus int
	}{
		{name: "right token", giveHeader: http.Header{"X-Auth-Token": {testToken}}, wantStatus: http.StatusOK},
		{name: "wrong token", giveHeader: http.Header{"X-Auth-Token": {"nope"}}, wantStatus: http.StatusUnauthorized},
		{name: "nothing", wantStatus: http.StatusUnauthorized},
		{name: "bogus signature", giveHeader: http.Header{"Authorization": {"SDK-HMAC-SHA256 Access=x, SignedHeaders=x-sdk-date, Signature=00"}}, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t, codeartssim.WithToken(testToken))
			status, body, hdr := send(t, sim, http.MethodPost, "/v3/jobs/"+jobA+"/recover", tt.giveHeader)
			require.Equal(t, tt.wantStatus, status)
			require.NotEmpty(t, hdr.Get("X-Request-Id"))
			if tt.wantStatus == http.StatusOK {
				require.Equal(t, map[string]any{"status": "success"}, body)
			} else {
				require.Equal(t, codeartssim.CodeAuthFailed, body["error_code"])
			}
		})
	}
}

func TestNoAuthConfigured(t *testing.T) {
	sim := codeartssim.New()
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, sim.Close()) })

	status, body, _ := send(t, sim, http.MethodPost, "/v3/jobs/"+jobA+"/recover", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "success", body["status"])
}

func TestFaults(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name           string
		give           []codeartssim.Option
		giveJob        string
		wantStatus     int // 0: success
		wantCode       string
		wantRetryAfter time.Duration
	}{
		{name: "none", giveJob: jobA},
		{name: "5xx 500", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 500)}, giveJob: jobA, wantStatus: 500, wantCode: codeartssim.CodeInternal},
		{name: "5xx 502", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 502)}, giveJob: jobA, wantStatus: 502, wantCode: codeartssim.CodeBackendUnavailable},
		{name: "5xx 503", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 503)}, giveJob: jobA, wantStatus: 503, wantCode: codeartssim.CodeIAMUnavailable},
		{name: "5xx 504", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 504)}, giveJob: jobA, wantStatus: 504, wantCode: codeartssim.CodeBackendUnavailable},
		{name: "5xx never", give: []codeartssim.Option{codeartssim.WithErrorRate(0)}, giveJob: jobA},
		{name: "gateway throttle", give: []codeartssim.Option{codeartssim.WithThrottle(1), codeartssim.WithRetryAfter(3 * time.Second)}, giveJob: jobA,
			wantStatus: 429, wantCode: codeartssim.CodeThrottled, wantRetryAfter: 3 * time.Second},
		{name: "gateway throttle rounds Retry-After up", give: []codeartssim.Option{codeartssim.WithThrottle(1), codeartssim.WithRetryAfter(1500 * time.Millisecond)}, giveJob: jobA,
			wantStatus: 429, wantCode: codeartssim.CodeThrottled, wantRetryAfter: 2 * time.Second},
		{name: "backend throttle", give: []codeartssim.Option{codeartssim.WithBackendThrottle(1)}, giveJob: jobA, wantStatus: 500, wantCode: codeartssim.CodeTooManyRequests},
		{name: "outage", give: []codeartssim.Option{codeartssim.WithOutage(true)}, giveJob: jobA, wantStatus: 503, wantCode: codeartssim.CodeIAMUnavailable},
		{name: "outage window now", give: []codeartssim.Option{codeartssim.WithOutageWindow(now.Add(-time.Minute), now.Add(time.Hour))}, giveJob: jobA,
			wantStatus: 503, wantCode: codeartssim.CodeIAMUnavailable},
		{name: "outage window past", give: []codeartssim.Option{codeartssim.WithOutageWindow(now.Add(-time.Hour), now.Add(-time.Minute))}, giveJob: jobA},
		{name: "outage window future", give: []codeartssim.Option{codeartssim.WithOutageWindow(now.Add(time.Hour), now.Add(2*time.Hour))}, giveJob: jobA},
		{name: "prefix 404", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "404" + jobA[3:],
			wantStatus: 404, wantCode: codeartssim.CodeJobMissing},
		{name: "prefix 422", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "422" + jobA[3:],
			wantStatus: 422, wantCode: codeartssim.CodeJobNotFound},
		{name: "prefix 400", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "400" + jobA[3:],
			wantStatus: 400, wantCode: codeartssim.CodeInvalidParam},
		{name: "prefix 403", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "403" + jobA[3:],
			wantStatus: 403, wantCode: ""}, // job-level: no error_code
		{name: "IAM denied", give: []codeartssim.Option{codeartssim.WithOutcome("cb", codeartssim.IAMDenied)}, giveJob: jobA,
			wantStatus: 403, wantCode: codeartssim.CodeIAMDenied},
		{name: "prefix not matching", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: jobA},
		{name: "custom prefix, longest wins", give: []codeartssim.Option{
			codeartssim.WithOutcome("cb", codeartssim.Outcome{Status: 409, Code: "CB.X", Msg: "short"}),
			codeartssim.WithOutcome("cb5f", codeartssim.Outcome{Status: 410, Code: "CB.Y", Msg: "long"}),
		}, giveJob: jobA, wantStatus: 410, wantCode: "CB.Y"},
		{name: "outcomes removed", give: []codeartssim.Option{codeartssim.WithOutcome("cb", codeartssim.StandardOutcome(404)), codeartssim.WithoutOutcomes()}, giveJob: jobA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, b := setup(t, tt.give...)
			ae := apiErr(t, b.client, tt.giveJob)
			st := sim.Stats()
			if tt.wantStatus == 0 {
				require.Nil(t, ae)
				require.Equal(t, 1, sim.Recovered(tt.giveJob))
				require.Equal(t, map[int]int64{200: 1}, st.ByStatus)
				return
			}
			require.NotNil(t, ae)
			require.Equal(t, tt.wantStatus, ae.StatusCode)
			require.Equal(t, tt.wantCode, ae.ErrorCode)
			require.NotEmpty(t, ae.ErrorMsg)
			require.Len(t, ae.RequestID, 32)
			require.Equal(t, tt.wantRetryAfter, ae.RetryAfter)
			require.Zero(t, sim.Recovered(tt.giveJob))
			require.Equal(t, map[int]int64{tt.wantStatus: 1}, st.ByStatus)
			require.Equal(t, int64(1), st.Jobs[tt.giveJob].Calls)
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		name       string
		giveMethod string
		givePath   string
		wantStatus int
		wantCode   string
	}{
		{name: "short job id", giveMethod: http.MethodPost, givePath: "/v3/jobs/abc/recover", wantStatus: 400, wantCode: codeartssim.CodeInvalidJobID},
		{name: "non-alphanumeric job id", giveMethod: http.MethodPost, givePath: "/v3/jobs/cb5fa20de5fd4cf8be681d4bd6fdd2f-/recover", wantStatus: 400, wantCode: codeartssim.CodeInvalidJobID},
		{name: "unknown path", giveMethod: http.MethodPost, givePath: "/v3/jobs/" + jobA + "/start", wantStatus: 404, wantCode: codeartssim.CodeNoSuchAPI},
		{name: "wrong method", giveMethod: http.MethodGet, givePath: "/v3/jobs/" + jobA + "/recover", wantStatus: 404, wantCode: codeartssim.CodeNoSuchAPI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := codeartssim.New()
			require.NoError(t, sim.Start("127.0.0.1:0"))
			t.Cleanup(func() { require.NoError(t, sim.Close()) })

			status, body, _ := send(t, sim, tt.giveMethod, tt.givePath, nil)
			require.Equal(t, tt.wantStatus, status)
			require.Equal(t, tt.wantCode, body["error_code"])
			require.NotEmpty(t, body["error_msg"])
		})
	}
}

func TestScript(t *testing.T) {
	sim, b := setup(t)
	sim.Script(jobA, 429, 500, 503, 404)
	sim.ScriptOutcomes(jobB, codeartssim.BackendThrottle)

	var got []int
	for range 5 {
		if ae := apiErr(t, b.client, jobA); ae != nil {
			got = append(got, ae.StatusCode)
		} else {
			got = append(got, 200)
		}
	}
	require.Equal(t, []int{429, 500, 503, 404, 200}, got)

	ae := apiErr(t, b.client, jobB)
	require.Equal(t, codeartssim.CodeTooManyRequests, ae.ErrorCode)
	require.Nil(t, apiErr(t, b.client, jobB))

	require.Equal(t, codeartssim.JobStats{Calls: 5, Recovered: 1}, sim.Stats().Jobs[jobA])
	require.Equal(t, codeartssim.JobStats{Calls: 2, Recovered: 1}, sim.Stats().Jobs[jobB])
}

func TestConfigureAtRuntime(t *testing.T) {
	sim, b := setup(t)

	sim.SetOutage(true)
	require.Equal(t, 503, apiErr(t, b.client, jobA).StatusCode)
	sim.SetOutage(false)
	require.Nil(t, apiErr(t, b.client, jobA))

	sim.Configure(codeartssim.WithThrottle(1))
	require.Equal(t, 429, apiErr(t, b.client, jobA).StatusCode)
	sim.Configure(codeartssim.WithThrottle(0))
	require.Nil(t, apiErr(t, b.client, jobA))

	// Rotated keys: the old ones stop working, the new ones work.
	sim.SetCredentials("HPUANEWACCESSKEY0002", "newSecret")
	require.Equal(t, 401, apiErr(t, b.client, jobA).StatusCode)
	require.NoError(t, b.client.SetCredentials(codearts.Credentials{AK: "HPUANEWACCESSKEY0002", SK: "newSecret"}))
	require.Nil(t, apiErr(t, b.client, jobA))

	require.Equal(t, 3, sim.Recovered(jobA))
}

func TestRateLimit(t *testing.T) {
	t.Run("burst", func(t *testing.T) {
		// One token per minute: exactly the burst gets through.
		sim, b := setup(t, codeartssim.WithRateLimit(1.0/60, 5))
		var admitted int
		for range 20 {
			ae := apiErr(t, b.client, jobA)
			if ae == nil {
				admitted++
				continue
			}
			require.Equal(t, 429, ae.StatusCode)
			require.Equal(t, codeartssim.CodeThrottled, ae.ErrorCode)
			require.GreaterOrEqual(t, ae.RetryAfter, time.Second)
		}
		require.Equal(t, 5, admitted)
		require.Equal(t, int64(15), sim.Stats().Throttled)
	})

	t.Run("rate", func(t *testing.T) {
		const rps, burst = 100.0, 1
		sim, b := setup(t, codeartssim.WithRateLimit(rps, burst))
		var wg sync.WaitGroup
		start := time.Now()
		for range 4 {
			wg.Go(func() {
				for time.Since(start) < 500*time.Millisecond {
					_, _ = b.client.Recover(context.Background(), jobA, "")
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		st := sim.Stats()
		admitted := float64(st.ByStatus[200])
		require.LessOrEqual(t, admitted, burst+rps*elapsed+1, "stats %+v", st)
		require.GreaterOrEqual(t, admitted, 0.5*rps*0.5, "stats %+v", st)
		require.Positive(t, st.Throttled)
	})
}

func TestApplyThenHang(t *testing.T) {
	tests := []struct {
		name string
		give codeartssim.Option
	}{
		{name: "prefix", give: codeartssim.WithApplyThenHangPrefix("cb5f", time.Hour)},
		{name: "probability", give: codeartssim.WithApplyThenHang(1, time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t, tt.give)
			client, err := codearts.NewClient(codearts.Config{
				Endpoint:    sim.URL(),
				Timeout:     100 * time.Millisecond,
				Credentials: codearts.Credentials{AK: testAK, SK: testSK},
			})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, client.Close()) })

			_, err = client.Recover(context.Background(), jobA, "")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			// The call failed for the client, yet the job was recovered.
			require.Equal(t, 1, sim.Recovered(jobA))
			require.Eventually(t, func() bool { return sim.Stats().Abandoned == 1 }, 5*time.Second, 5*time.Millisecond)
		})
	}
}

func TestSeedReproducible(t *testing.T) {
	run := func() []int {
		sim, b := setup(t, codeartssim.WithSeed(42), codeartssim.WithErrorRate(0.5))
		var got []int
		for range 20 {
			if ae := apiErr(t, b.client, jobA); ae != nil {
				got = append(got, ae.StatusCode)
			} else {
				got = append(got, 200)
			}
		}
		require.NoError(t, sim.Close())
		return got
	}
	first := run()
	require.Equal(t, first, run())
	require.Contains(t, first, 200)
	require.NotEqual(t, []int{200}, dedupe(first))
}

func dedupe(xs []int) []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func TestStatsEndpoint(t *testing.T) {
	sim, b := setup(t)
	sim.Script(jobB, 429)
	require.Nil(t, apiErr(t, b.client, jobA))
	require.NotNil(t, apiErr(t, b.client, jobB))
	require.Nil(t, apiErr(t, b.client, jobB))

	want := codeartssim.Stats{
		Calls:     3,
		ByStatus:  map[int]int64{200: 2, 429: 1},
		Throttled: 1,
		Recovered: 2,
		Jobs: map[string]codeartssim.JobStats{
			jobA: {Calls: 1, Recovered: 1},
			jobB: {Calls: 2, Recovered: 1},
		},
	}
	require.Equal(t, want, sim.Stats())

	resp, err := http.Get(sim.URL() + "/stats")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var got codeartssim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Equal(t, want, got)

	status, body, _ := send(t, sim, http.MethodGet, "/stats?jobs=0", nil)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, body, "jobs")
	require.InDelta(t, 3, body["calls"], 0) // /stats itself is not a call

	sim.Reset()
	require.Equal(t, codeartssim.Stats{ByStatus: map[int]int64{}, Jobs: map[string]codeartssim.JobStats{}}, sim.Stats())
}

func TestRequestIDsUnique(t *testing.T) {
	sim, b := setup(t)
	seen := make(map[string]bool)
	for range 50 {
		id, err := b.client.Recover(context.Background(), jobA, "")
		require.NoError(t, err)
		require.False(t, seen[id], "duplicate request id %s", id)
		seen[id] = true
	}
	require.Equal(t, 50, sim.Recovered(jobA))
}

func TestConcurrentCallsAndReconfiguration(t *testing.T) {
	sim, b := setup(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 8 {
		wg.Go(func() {
			for range 50 {
				status := 200
				_, err := b.client.Recover(context.Background(), jobA, "")
				var ae *codearts.APIError
				if errors.As(err, &ae) {
					status = ae.StatusCode
				} else {
					require.NoError(t, err)
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			sim.SetOutage(i%2 == 0)
		}
		sim.SetOutage(false)
	})
	wg.Wait()

	st := sim.Stats()
	require.Equal(t, int64(400), st.Calls)
	require.Equal(t, int64(statuses[200]), st.Recovered)
	require.Equal(t, int64(statuses[200]), st.ByStatus[200])
	require.Equal(t, int64(statuses[503]), st.ByStatus[503])
	require.Equal(t, 400, statuses[200]+statuses[503])
}

func TestStartClose(t *testing.T) {
	sim := codeartssim.New()
	require.Empty(t, sim.URL())
	require.NoError(t, sim.Start("127.0.0.1:0"))
	require.Error(t, sim.Start("127.0.0.1:0"))
	require.NoError(t, sim.Close())
	require.NoError(t, sim.Close())
	require.Error(t, sim.Start("127.0.0.1:0"))
}

// Every answer of the real API that does not recover the job, as it goes
// over the wire: status, Content-Type and the exact body.
func TestAnswerKinds(t *testing.T) {
	now := time.Now()
	during := []time.Time{now.Add(-time.Minute), now.Add(time.Hour)}
	const (
		nginx502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
			"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
		internal = `{"error_code":"CB.00060101","error_msg":"Internal server error"}`
	)
	tests := []struct {
		name            string
		give            []codeartssim.Option
		giveJob         string
		wantStatus      int
		wantContentType string
		wantBody        string
		wantFault       codeartssim.Fault // "": none counted
	}{
		{name: "200 fail", give: []codeartssim.Option{codeartssim.WithFailStatus(1)},
			wantStatus: 200, wantContentType: "application/json", wantBody: `{"status":"fail"}`, wantFault: codeartssim.FaultFail200},
		{name: "200 with an error code", give: []codeartssim.Option{codeartssim.WithErrorOn200(1)},
			wantStatus: 200, wantContentType: "application/json", wantBody: internal, wantFault: codeartssim.FaultErrorOn200},
		{name: "HTML 502", give: []codeartssim.Option{codeartssim.WithHTMLErrors(1)},
			wantStatus: 502, wantContentType: "text/html", wantBody: nginx502, wantFault: codeartssim.FaultHTML502},
		{name: "HTML 200", give: []codeartssim.Option{codeartssim.WithHTMLSuccess(1)},
			wantStatus: 200, wantContentType: "text/html; charset=utf-8",
			wantBody:  "<!DOCTYPE html>\n<html>\n<head><title>Notice</title></head>\n<body>\n<h1>Request received</h1>\n<p>Your request is being processed.</p>\n</body>\n</html>\n",
			wantFault: codeartssim.FaultHTML200},
		{name: "string body", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 500), codeartssim.WithStringBodies(1)},
			wantStatus: 500, wantContentType: "application/json", wantBody: `"{\"error_code\":\"CB.00060101\",\"error_msg\":\"Internal server error\"}"`,
			wantFault: codeartssim.FaultStringBody},
		{name: "string body of a job-level 403", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()), codeartssim.WithStringBodies(1)},
			giveJob: "403" + jobA[3:], wantStatus: 403, wantContentType: "application/json",
			wantBody: `"{\"error_msg\":\"You do not have permission to operate this build job\"}"`, wantFault: codeartssim.FaultStringBody},
		{name: "route 404", give: []codeartssim.Option{codeartssim.WithRoute404(true)},
			wantStatus: 404, wantContentType: "application/json",
			wantBody:  `{"error_code":"APIG.0101","error_msg":"The API does not exist or has not been published in the environment"}`,
			wantFault: codeartssim.FaultRoute404},
		{name: "route 404 window", give: []codeartssim.Option{codeartssim.WithRoute404Window(during[0], during[1])},
			wantStatus: 404, wantContentType: "application/json",
			wantBody:  `{"error_code":"APIG.0101","error_msg":"The API does not exist or has not been published in the environment"}`,
			wantFault: codeartssim.FaultRoute404},
		{name: "unauthorized window", give: []codeartssim.Option{codeartssim.WithUnauthorizedWindow(during[0], during[1])},
			wantStatus: 401, wantContentType: "application/json",
			wantBody:  `{"error_code":"APIG.0301","error_msg":"Incorrect IAM authentication information: the access key is locked after repeated failures"}`,
			wantFault: codeartssim.FaultUnauthorized},
		{name: "job-level 403", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "403" + jobA[3:],
			wantStatus: 403, wantContentType: "application/json", wantBody: `{"error_msg":"You do not have permission to operate this build job"}`},
		{name: "IAM user not authorised", give: []codeartssim.Option{codeartssim.WithOutcome("cb", codeartssim.IAMDenied)},
			wantStatus: 403, wantContentType: "application/json", wantBody: `{"error_code":"APIG.0302","error_msg":"The IAM user is not authorized to call this API"}`},
		{name: "422 job not found", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "422" + jobA[3:],
			wantStatus: 422, wantContentType: "application/json", wantBody: `{"error_code":"CB.00031006","error_msg":"The build job does not exist or has been deleted"}`},
		{name: "404 job not found", give: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}, giveJob: "404" + jobA[3:],
			wantStatus: 404, wantContentType: "application/json", wantBody: `{"error_code":"CB.00060214","error_msg":"The build job does not exist"}`},
		{name: "busy", give: []codeartssim.Option{codeartssim.WithOutcome("cb", codeartssim.Outcome{Status: 500, Code: codeartssim.CodeBusy, Msg: "busy"})},
			wantStatus: 500, wantContentType: "application/json", wantBody: `{"error_code":"CB.00060100","error_msg":"busy"}`},
		{name: "IAM unavailable", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 503)},
			wantStatus: 503, wantContentType: "application/json", wantBody: `{"error_code":"APIG.0613","error_msg":"The IAM service is currently unavailable"}`},
		{name: "backend timeout", give: []codeartssim.Option{codeartssim.WithErrorRate(1, 504)},
			wantStatus: 504, wantContentType: "application/json", wantBody: `{"error_code":"APIG.0201","error_msg":"Backend timeout"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t, tt.give...)
			job := tt.giveJob
			if job == "" {
				job = jobA
			}
			got := post(t, sim, recoverPath(job), testAK, testSK)
			require.Equal(t, rawAnswer{status: tt.wantStatus, contentType: tt.wantContentType, body: tt.wantBody}, got)

			st := sim.Stats()
			require.Zero(t, sim.Recovered(job), "not recovered")
			require.Empty(t, sim.RecoveredJobs())
			require.Zero(t, st.Recovered)
			require.Equal(t, map[int]int64{tt.wantStatus: 1}, st.ByStatus)
			require.Equal(t, int64(1), st.Jobs[job].Calls)
			if tt.wantFault == "" {
				require.Nil(t, st.Faults)
			} else {
				require.Equal(t, map[codeartssim.Fault]int64{tt.wantFault: 1}, st.Faults)
			}
		})
	}
}

// A string body hides the error code from the SDK, as it does with the real
// API: the code is only in the raw body.
func TestStringBodyHidesCodeFromSDK(t *testing.T) {
	sim, _ := setup(t, codeartssim.WithBackendThrottle(1), codeartssim.WithStringBodies(1))
	raw := rawSDKClient(t, sim.URL(), testAK, testSK, nil)
	_, err := raw.EnableBuildJob(&model.EnableBuildJobRequest{JobId: jobA})
	var sre *sdkerr.ServiceResponseError
	require.ErrorAs(t, err, &sre)
	require.Equal(t, http.StatusInternalServerError, sre.StatusCode)
	require.Empty(t, sre.ErrorCode)
	require.Contains(t, sre.ErrorMessage, codeartssim.CodeTooManyRequests)
	require.Zero(t, sim.Recovered(jobA))
}

// While the API is not published (wrong endpoint or region), every request
// gets 404 APIG.0101 before its signature is looked at; outside the window
// the signature is checked again.
func TestRoute404BeforeSignature(t *testing.T) {
	now := time.Now()
	sim, b := setup(t,
		codeartssim.WithRoute404Window(now.Add(-time.Hour), now.Add(-time.Minute)), // past: windows add up
		codeartssim.WithRoute404Window(now.Add(-time.Minute), now.Add(time.Hour)))

	for _, give := range []struct{ name, path, ak, sk string }{
		{name: "signed", path: recoverPath(jobA), ak: testAK, sk: testSK},
		{name: "wrong secret", path: recoverPath(jobA), ak: testAK, sk: "not-the-secret"},
		{name: "unsigned", path: recoverPath(jobA)},
		{name: "other path", path: "/v3/jobs/" + jobA + "/start", ak: testAK, sk: testSK},
	} {
		got := post(t, sim, give.path, give.ak, give.sk)
		require.Equal(t, http.StatusNotFound, got.status, give.name)
		require.Contains(t, got.body, `"error_code":"APIG.0101"`, give.name)
	}
	require.Equal(t, 404, apiErr(t, b.client, jobA).StatusCode, "through the SDK too")
	st := sim.Stats()
	require.Equal(t, map[codeartssim.Fault]int64{codeartssim.FaultRoute404: 5}, st.Faults)
	require.Equal(t, map[int]int64{404: 5}, st.ByStatus)
	require.Zero(t, sim.Recovered(jobA))

	sim.Configure(codeartssim.WithRoute404(true))
	require.Equal(t, 404, post(t, sim, recoverPath(jobA), testAK, testSK).status, "on, whatever the windows")

	// Outside every window the signature is verified again.
	sim, _ = setup(t, codeartssim.WithRoute404Window(now.Add(-time.Hour), now.Add(-time.Minute)))
	got := post(t, sim, recoverPath(jobA), testAK, "not-the-secret")
	require.Equal(t, http.StatusUnauthorized, got.status)
	require.Contains(t, got.body, `"error_code":"APIG.0301"`)
	require.Equal(t, http.StatusOK, post(t, sim, recoverPath(jobA), testAK, testSK).status)
	require.Equal(t, map[string]int{jobA: 1}, sim.RecoveredJobs())
}

// Every answer fault sits behind the signature check: a badly signed
// request gets 401 APIG.0301 and draws no fault.
func TestAnswerFaultsNeedASignature(t *testing.T) {
	for _, give := range []struct {
		name string
		opt  codeartssim.Option
	}{
		{name: "fail status", opt: codeartssim.WithFailStatus(1)},
		{name: "error on 200", opt: codeartssim.WithErrorOn200(1)},
		{name: "HTML 502", opt: codeartssim.WithHTMLErrors(1)},
		{name: "HTML 200", opt: codeartssim.WithHTMLSuccess(1)},
		{name: "string bodies", opt: codeartssim.WithStringBodies(1)},
		{name: "5xx", opt: codeartssim.WithErrorRate(1)},
	} {
		t.Run(give.name, func(t *testing.T) {
			sim, _ := setup(t, give.opt)
			got := post(t, sim, recoverPath(jobA), testAK, "not-the-secret")
			require.Equal(t, rawAnswer{status: 401, contentType: "application/json",
				body: `{"error_code":"APIG.0301","error_msg":"Incorrect IAM authentication information: verify aksk signature fail"}`}, got)
			require.Nil(t, sim.Stats().Faults)
			require.Zero(t, sim.Recovered(jobA))
		})
	}
}

// The random answers are drawn in the documented order: the first that
// hits is given.
func TestAnswerPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		give       []codeartssim.Option
		giveScript []int
		wantStatus int
		wantBody   string
	}{
		{name: "5xx before HTML 502", give: []codeartssim.Option{codeartssim.WithHTMLErrors(1), codeartssim.WithErrorRate(1, 500)},
			wantStatus: 500, wantBody: `{"error_code":"CB.00060101","error_msg":"Internal server error"}`},
		{name: "HTML 502 before fail", give: []codeartssim.Option{codeartssim.WithFailStatus(1), codeartssim.WithHTMLErrors(1)},
			wantStatus: 502, wantBody: "<html>"},
		{name: "fail before error on 200", give: []codeartssim.Option{codeartssim.WithErrorOn200(1), codeartssim.WithFailStatus(1)},
			wantStatus: 200, wantBody: `{"status":"fail"}`},
		{name: "error on 200 before HTML 200", give: []codeartssim.Option{codeartssim.WithHTMLSuccess(1), codeartssim.WithErrorOn200(1)},
			wantStatus: 200, wantBody: `{"error_code":"CB.00060101"`},
		{name: "HTML 200 before prefix outcomes", give: []codeartssim.Option{codeartssim.WithOutcome("cb", codeartssim.StandardOutcome(404)), codeartssim.WithHTMLSuccess(1)},
			wantStatus: 200, wantBody: "<!DOCTYPE html>"},
		{name: "script before everything random", give: []codeartssim.Option{codeartssim.WithFailStatus(1)}, giveScript: []int{200},
			wantStatus: 200, wantBody: `{"status":"success"}`},
		{name: "outage before random answers", give: []codeartssim.Option{codeartssim.WithFailStatus(1), codeartssim.WithOutage(true)},
			wantStatus: 503, wantBody: `{"error_code":"APIG.0613"`},
		{name: "route 404 before unauthorized", give: []codeartssim.Option{
			codeartssim.WithUnauthorizedWindow(time.Now().Add(-time.Minute), time.Now().Add(time.Hour)), codeartssim.WithRoute404(true)},
			wantStatus: 404, wantBody: `{"error_code":"APIG.0101"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, _ := setup(t, tt.give...)
			if tt.giveScript != nil {
				sim.Script(jobA, tt.giveScript...)
			}
			got := post(t, sim, recoverPath(jobA), testAK, testSK)
			require.Equal(t, tt.wantStatus, got.status)
			require.True(t, strings.HasPrefix(got.body, tt.wantBody), "body %q", got.body)
			wantRecovered := 0
			if tt.wantBody == `{"status":"success"}` {
				wantRecovered = 1
			}
			require.Equal(t, wantRecovered, sim.Recovered(jobA))
		})
	}
}

// Only a real success recovers: a test can compare what the worker was told
// with what was done, through RecoveredJobs and /stats.
func TestRecoveredJobsKeepTheTruth(t *testing.T) {
	sim, b := setup(t)
	require.Nil(t, apiErr(t, b.client, jobA))
	sim.Configure(codeartssim.WithFailStatus(1))
	require.Equal(t, 200, post(t, sim, recoverPath(jobB), testAK, testSK).status)
	sim.Configure(codeartssim.WithFailStatus(0), codeartssim.WithErrorOn200(1))
	require.Equal(t, 200, post(t, sim, recoverPath(jobB), testAK, testSK).status)

	require.Equal(t, map[string]int{jobA: 1}, sim.RecoveredJobs())
	resp, err := http.Get(sim.URL() + "/stats?jobs=0")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var st codeartssim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.Equal(t, map[codeartssim.Fault]int64{codeartssim.FaultFail200: 1, codeartssim.FaultErrorOn200: 1}, st.Faults)
	require.Equal(t, int64(1), st.Recovered)
	require.Equal(t, map[int]int64{200: 3}, st.ByStatus)

	sim.Reset()
	require.Nil(t, sim.Stats().Faults)
	require.Empty(t, sim.RecoveredJobs())
}
