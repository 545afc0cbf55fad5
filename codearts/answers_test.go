package codearts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// Every answer of SPEC's answers table, through the real SDK and the
// simulator (signature verified): what the client reports (status, code,
// message) and the class retry gives it, which decides the request's fate.
// Only a 2xx whose body says success recovers the job.
func TestRealAnswers(t *testing.T) {
	tests := []struct {
		name     string
		giveSim  []codeartssim.Option
		giveStep *codeartssim.Outcome // scripted answer for the job
		giveJob  string               // default jobA
		wantOK   bool
		wantCode string
		wantMsg  string // contained in the error's message
		want     int    // HTTP status
		wantCls  retry.Class
	}{
		{name: "200 success", want: 200, wantOK: true, wantCls: retry.Success},
		{name: "200 status fail", giveSim: opts(codeartssim.WithFailStatus(1)),
			want: 200, wantMsg: `recover not applied: body status "fail"`, wantCls: retry.Transient},
		{name: "200 with an error code", giveSim: opts(codeartssim.WithErrorOn200(1)),
			want: 200, wantCode: "CB.00060101", wantMsg: "Internal server error", wantCls: retry.Transient},
		{name: "200 HTML from a proxy", giveSim: opts(codeartssim.WithHTMLSuccess(1)),
			want: 200, wantMsg: "recover not applied: body is not JSON", wantCls: retry.Transient},
		{name: "502 HTML from a proxy", giveSim: opts(codeartssim.WithHTMLErrors(1)),
			want: 502, wantMsg: "502 Bad Gateway", wantCls: retry.Transient},
		{name: "404 APIG.0101 route", giveSim: opts(codeartssim.WithRoute404(true)),
			want: 404, wantCode: "APIG.0101", wantMsg: "has not been published", wantCls: retry.Configuration},
		{name: "404 APIG.0101 as a JSON string", giveSim: opts(codeartssim.WithRoute404(true), codeartssim.WithStringBodies(1)),
			want: 404, wantCode: "APIG.0101", wantMsg: "has not been published", wantCls: retry.Configuration},
		{name: "401 APIG.0301 bad signature", giveSim: opts(codeartssim.WithCredentials(testAK, "another secret")),
			want: 401, wantCode: "APIG.0301", wantCls: retry.Unauthorized},
		{name: "401 APIG.0307", giveStep: &codeartssim.Outcome{Status: 401, Code: codeartssim.CodeTokenExpired, Msg: "The token must be updated"},
			want: 401, wantCode: "APIG.0307", wantCls: retry.Unauthorized},
		{name: "403 APIG.0302", giveStep: &codeartssim.IAMDenied, want: 403, wantCode: "APIG.0302", wantCls: retry.Configuration},
		{name: "403 APIG.0306", giveStep: &codeartssim.Outcome{Status: 403, Code: codeartssim.CodeAccessDenied, Msg: "Access denied"},
			want: 403, wantCode: "APIG.0306", wantCls: retry.Configuration},
		{name: "403 APIG.0310", giveStep: &codeartssim.Outcome{Status: 403, Code: codeartssim.CodeProjectUnavailable, Msg: "The project is unavailable"},
			want: 403, wantCode: "APIG.0310", wantCls: retry.Configuration},
		{name: "403 without a code", giveStep: step(403), want: 403, wantMsg: "permission", wantCls: retry.Forbidden},
		{name: "429 APIG.0308", giveSim: opts(codeartssim.WithThrottle(1)), want: 429, wantCode: "APIG.0308", wantCls: retry.Throttled},
		{name: "500 CB.00060211", giveSim: opts(codeartssim.WithBackendThrottle(1)), want: 500, wantCode: "CB.00060211", wantCls: retry.Throttled},
		{name: "500 CB.00060211 as a JSON string", giveSim: opts(codeartssim.WithBackendThrottle(1), codeartssim.WithStringBodies(1)),
			want: 500, wantCode: "CB.00060211", wantMsg: "Too many requests", wantCls: retry.Throttled},
		{name: "502 APIG.0201", giveStep: step(502), want: 502, wantCode: "APIG.0201", wantCls: retry.Transient},
		{name: "504 APIG.0201", giveStep: step(504), want: 504, wantCode: "APIG.0201", wantCls: retry.Transient},
		{name: "503 APIG.0613", giveStep: step(503), want: 503, wantCode: "APIG.0613", wantCls: retry.Transient},
		{name: "500 CB.00060100", giveStep: &codeartssim.Outcome{Status: 500, Code: codeartssim.CodeBusy, Msg: "Service busy"},
			want: 500, wantCode: "CB.00060100", wantCls: retry.Transient},
		{name: "500 CB.00060101", giveStep: step(500), want: 500, wantCode: "CB.00060101", wantCls: retry.Transient},
		{name: "500 CB.00060101 as a JSON string", giveStep: step(500), giveSim: opts(codeartssim.WithStringBodies(1)),
			want: 500, wantCode: "CB.00060101", wantMsg: "Internal server error", wantCls: retry.Transient},
		{name: "400 CB.00060200", giveStep: step(400), want: 400, wantCode: "CB.00060200", wantCls: retry.ClientError},
		{name: "400 CB.00060201", giveStep: &codeartssim.Outcome{Status: 400, Code: codeartssim.CodeInvalidJobID, Msg: "Invalid job id"},
			want: 400, wantCode: "CB.00060201", wantCls: retry.ClientError},
		{name: "422 CB.00031006", giveStep: step(422), want: 422, wantCode: "CB.00031006", wantCls: retry.ClientError},
		{name: "422 CB.00031006 as a JSON string", giveStep: step(422), giveSim: opts(codeartssim.WithStringBodies(1)),
			want: 422, wantCode: "CB.00031006", wantCls: retry.ClientError},
		{name: "422 DEVCB.00031006", giveStep: &codeartssim.Outcome{Status: 422, Code: codeartssim.CodeJobNotFoundV1, Msg: "job not found"},
			want: 422, wantCode: "DEVCB.00031006", wantCls: retry.ClientError},
		{name: "404 CB.00060214", giveStep: step(404), want: 404, wantCode: "CB.00060214", wantCls: retry.ClientError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b := setup(t, nil, tt.giveSim...)
			job := jobA
			if tt.giveJob != "" {
				job = tt.giveJob
			}
			if tt.giveStep != nil {
				b.sim.ScriptOutcomes(job, *tt.giveStep)
			}
			_, err := c.Recover(context.Background(), job, "")
			require.Equal(t, tt.wantCls, retry.Classify(err), "class of %v", err)
			if tt.wantOK {
				require.NoError(t, err)
				require.Equal(t, 1, b.sim.Recovered(job))
				return
			}
			require.Zero(t, b.sim.Recovered(job), "the simulator did not recover the job")
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tt.want, ae.StatusCode)
			require.Equal(t, tt.wantCode, ae.ErrorCode)
			require.Contains(t, ae.ErrorMsg, tt.wantMsg)
			require.NotContains(t, ae.ErrorMsg, "<", "no markup in the message")
			require.NotContains(t, ae.ErrorMsg, "\n", "one line")
			require.LessOrEqual(t, len(ae.ErrorMsg), maxErrorMsg+len("…"))
			require.Len(t, ae.RequestID, 32)
			require.NotContains(t, err.Error(), testSK)
		})
	}
}

func opts(o ...codeartssim.Option) []codeartssim.Option { return o }

func step(status int) *codeartssim.Outcome {
	o := codeartssim.StandardOutcome(status)
	return &o
}

// Body shapes the simulator does not produce, read as the client must.
func TestParseAnswer(t *testing.T) {
	tests := []struct {
		name string
		give string
		want answer
	}{
		{"success", `{"status":"success"}`, answer{JSON: true, Status: "success"}},
		{"success with whitespace", " \n{\"status\": \"success\"}\n", answer{JSON: true, Status: "success"}},
		{"fail", `{"status":"fail"}`, answer{JSON: true, Status: "fail"}},
		{"success with an error code", `{"status":"success","error_code":"CB.00060101","error_msg":"x"}`,
			answer{JSON: true, Status: "success", ErrorCode: "CB.00060101", ErrorMsg: "x"}},
		{"code without a message", `{"error_code":"APIG.0101"}`, answer{JSON: true, ErrorCode: "APIG.0101"}},
		{"code and message", `{"code":"APIGW.0308","message":"throttled"}`, answer{JSON: true, ErrorCode: "APIGW.0308", ErrorMsg: "throttled"}},
		{"nested", `{"error":{"code":"DEV.CB.00031006","message":"not found"}}`,
			answer{JSON: true, ErrorCode: "DEV.CB.00031006", ErrorMsg: "not found"}},
		{"JSON string holding JSON", `"{\"error_code\":\"CB.00060211\",\"error_msg\":\"Too many requests\"}"`,
			answer{JSON: true, ErrorCode: "CB.00060211", ErrorMsg: "Too many requests"}},
		{"a JSON string of text", `"busy"`, answer{ErrorMsg: "busy"}},
		{"numeric code is not a code", `{"error_code":500,"error_msg":"x"}`, answer{JSON: true, ErrorMsg: "x"}},
		{"HTML with a title", "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1><hr>nginx</body></html>",
			answer{ErrorMsg: "502 Bad Gateway"}},
		{"HTML without a title", "<html><body><script>var x = 1;</script><p>Request  blocked &amp; logged</p>\n</body></html>",
			answer{ErrorMsg: "Request blocked & logged"}},
		{"text", "upstream connect error\r\nor disconnect", answer{ErrorMsg: "upstream connect error or disconnect"}},
		{"empty", "", answer{}},
		{"truncated JSON", `{"status":"succ`, answer{ErrorMsg: `{"status":"succ`}},
		{"a JSON array", `[{"status":"success"}]`, answer{ErrorMsg: `[{"status":"success"}]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, parseAnswer([]byte(tt.give)))
		})
	}
	long := parseAnswer([]byte("<p>" + string(make([]byte, 4096)) + "</p>"))
	require.LessOrEqual(t, len(long.ErrorMsg), maxSummary+len("…"))
}

// A 2xx the SDK cannot parse, and one it parses but that says nothing:
// neither is a recovery.
func TestUnparsed2xxIsNotApplied(t *testing.T) {
	for _, body := range []string{"", "{}", "OK", `{"status":"SUCCESS "}`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}))
		c, _ := setup(t, func(c *Config) { c.Endpoint = srv.URL })
		_, err := c.Recover(context.Background(), jobA, "")
		srv.Close()
		var ae *APIError
		require.ErrorAs(t, err, &ae, "body %q", body)
		require.Equal(t, 200, ae.StatusCode)
		require.Contains(t, ae.ErrorMsg, "recover not applied", "body %q", body)
		require.Equal(t, retry.Transient, retry.Classify(err), "body %q", body)
	}
}
