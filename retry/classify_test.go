package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveErr error
		want    Class
	}{
		{"nil", nil, Success},
		// An Answer with a 2xx status is a body that did not say success: by code, else transient.
		{"200 status fail, no code", apiErr(200, ""), Transient},
		{"204 without a body", apiErr(204, ""), Transient},
		{"200 with an unknown code", apiErr(200, "CB.00069999"), Transient},
		{"200 with CB.00060101", apiErr(200, "CB.00060101"), Transient},
		{"2xx with a client error code", apiErr(200, "CB.00060201"), ClientError},
		{"2xx with CB.00060200", apiErr(202, "CB.00060200"), ClientError},
		{"2xx with a throttle code", apiErr(200, "CB.00060211"), Throttled},
		{"2xx with APIG.0101", apiErr(200, "APIG.0101"), Configuration},
		{"2xx with a prefixed not-found", apiErr(200, "DEVCB.00031006"), ClientError},

		{"429", apiErr(429, ""), Throttled},
		{"429 APIG.0308", apiErr(429, "APIG.0308"), Throttled},
		{"429 unlisted code", apiErr(429, "APIG.1002"), Throttled},
		{"APIGW.0308 on 429", apiErr(429, "APIGW.0308"), Throttled},
		{"APIG.0308 on 500", apiErr(500, "APIG.0308"), Throttled},
		{"APIG.0308 on 403", apiErr(403, "APIG.0308"), Throttled},
		{"APIG.0308 on 401", apiErr(401, "APIG.0308"), Throttled},
		{"APIG.0308 without status", apiErr(0, "APIG.0308"), Throttled},
		{"CB.00060211 on 500", apiErr(500, "CB.00060211"), Throttled},
		{"CB.00060211 on 400", apiErr(400, "CB.00060211"), Throttled},
		{"CB.00060211 on 503", apiErr(503, "CB.00060211"), Throttled},

		{"CB.00060200 on 500", apiErr(500, "CB.00060200"), ClientError},
		{"CB.00060201 on 500", apiErr(500, "CB.00060201"), ClientError},
		{"CB.00060201 on 400", apiErr(400, "CB.00060201"), ClientError},
		{"CB.00060200 on 401: code beats status", apiErr(401, "CB.00060200"), ClientError},
		{"CB.00060201 on 429: code beats status", apiErr(429, "CB.00060201"), ClientError},
		{"CB.00060201 on 503", apiErr(503, "CB.00060201"), ClientError},

		// The answers table of SPEC: real codes from the documentation and live users.
		{"404 APIG.0101: API not published here", apiErr(404, "APIG.0101"), Configuration},
		{"404 APIGW.0101", apiErr(404, "APIGW.0101"), Configuration},
		{"401 APIG.0301: bad signature", apiErr(401, "APIG.0301"), Unauthorized},
		{"401 APIGW.0301", apiErr(401, "APIGW.0301"), Unauthorized},
		{"401 APIG.0307: token must be updated", apiErr(401, "APIG.0307"), Unauthorized},
		{"403 APIG.0302: IAM user not authorised", apiErr(403, "APIG.0302"), Configuration},
		{"403 APIGW.0302", apiErr(403, "APIGW.0302"), Configuration},
		{"403 APIG.0306: access denied", apiErr(403, "APIG.0306"), Configuration},
		{"403 APIG.0310: project unavailable", apiErr(403, "APIG.0310"), Configuration},
		{"429 APIG.0308", apiErr(429, "APIG.0308"), Throttled},
		{"502 APIG.0201", apiErr(502, "APIG.0201"), Transient},
		{"504 APIG.0201", apiErr(504, "APIG.0201"), Transient},
		{"503 APIG.0613: IAM unavailable", apiErr(503, "APIG.0613"), Transient},
		{"500 CB.00060100: busy", apiErr(500, "CB.00060100"), Transient},
		{"500 CB.00060101: internal", apiErr(500, "CB.00060101"), Transient},
		{"500 CB.00060211: throttled", apiErr(500, "CB.00060211"), Throttled},
		{"400 CB.00060200: invalid parameter", apiErr(400, "CB.00060200"), ClientError},
		{"400 CB.00060201: invalid job id", apiErr(400, "CB.00060201"), ClientError},
		{"422 CB.00031006: job not found", apiErr(422, "CB.00031006"), ClientError},
		{"422 DEVCB.00031006 (v1)", apiErr(422, "DEVCB.00031006"), ClientError},
		{"422 DEV.CB.00031006", apiErr(422, "DEV.CB.00031006"), ClientError},
		{"404 CB.00060214: job not found", apiErr(404, "CB.00060214"), ClientError},
		{"404 without a code", apiErr(404, ""), ClientError},
		{"DEV.CB.00060211 on 500", apiErr(500, "DEV.CB.00060211"), Throttled},

		{"401", apiErr(401, ""), Unauthorized},
		{"401 with an unlisted code", apiErr(401, "APIG.1002"), Unauthorized},
		{"403", apiErr(403, ""), Forbidden},
		{"403 with an unlisted code", apiErr(403, "CB.00060005"), Forbidden},

		{"400", apiErr(400, "CB.00069998"), ClientError},
		{"404", apiErr(404, "CB.00060404"), ClientError},
		{"405", apiErr(405, ""), ClientError},
		{"409", apiErr(409, ""), ClientError},
		{"410", apiErr(410, ""), ClientError},
		{"422", apiErr(422, ""), ClientError},
		{"other 4xx: 418", apiErr(418, ""), ClientError},
		{"other 4xx: 451", apiErr(451, ""), ClientError},
		{"other 4xx: 499", apiErr(499, ""), ClientError},

		{"408", apiErr(408, ""), Transient},
		{"500", apiErr(500, ""), Transient},
		{"500 unlisted code", apiErr(500, "CB.00069999"), Transient},
		{"502", apiErr(502, ""), Transient},
		{"503", apiErr(503, "APIG.0201"), Transient},
		{"504", apiErr(504, ""), Transient},
		{"599", apiErr(599, ""), Transient},
		{"no status, no code", apiErr(0, ""), Transient},
		{"3xx", apiErr(302, ""), Transient},
		{"1xx", apiErr(100, ""), Transient},

		{"wrapped answer", fmt.Errorf("recover cb5f: %w", apiErr(404, "")), ClientError},
		{"doubly wrapped throttle", fmt.Errorf("a: %w", fmt.Errorf("b: %w", apiErr(500, "CB.00060211"))), Throttled},
		{"joined with EOF", errors.Join(io.EOF, apiErr(401, "")), Unauthorized},

		{"context.Canceled", context.Canceled, Canceled},
		{"wrapped context.Canceled", fmt.Errorf("recover: %w", context.Canceled), Canceled},
		{"url.Error over context.Canceled", &url.Error{Op: "Post", URL: "https://x", Err: context.Canceled}, Canceled},
		{"context.DeadlineExceeded", context.DeadlineExceeded, Transient},
		{"wrapped context.DeadlineExceeded", fmt.Errorf("call: %w", context.DeadlineExceeded), Transient},
		{"net.Error timeout", timeoutErr{}, Transient},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded, Transient},
		{"DNS timeout", &net.DNSError{Err: "timeout", Name: "cb.example", IsTimeout: true}, Transient},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Transient},
		{"connection reset", &url.Error{Op: "Post", URL: "https://x", Err: syscall.ECONNRESET}, Transient},
		{"io.EOF", io.EOF, Transient},
		{"io.ErrUnexpectedEOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), Transient},
		{"url.Error", &url.Error{Op: "Post", URL: "https://x", Err: errors.New("tls: handshake failure")}, Transient},
		{"unknown error", errors.New("something odd"), Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Classify(tt.giveErr))
			var nilClassifier *Classifier
			require.Equal(t, tt.want, nilClassifier.Classify(tt.giveErr), "nil *Classifier uses the defaults")
		})
	}
}

func TestClassifierOperatorRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		giveRules []string
		giveErr   error
		want      Class
	}{
		{"new throttle code on 500", []string{"500:CB.00069999=throttled"}, apiErr(500, "CB.00069999"), Throttled},
		{"pair rule only on its status", []string{"500:CB.00069999=throttled"}, apiErr(502, "CB.00069999"), Transient},
		{"any-status code rule overrides default code", []string{"*:CB.00060211=client_error"}, apiErr(500, "CB.00060211"), ClientError},
		{"any-status code rule", []string{"*:CB.00060201=transient"}, apiErr(400, "CB.00060201"), Transient},
		{"status rule overrides family", []string{"418=transient"}, apiErr(418, ""), Transient},
		{"status rule overrides default status", []string{"404=transient"}, apiErr(404, "CB.00060404"), Transient},
		{"operator status rule beats default code rule", []string{"500=client_error"}, apiErr(500, "CB.00060211"), ClientError},
		{"operator pair beats operator code", []string{"*:X.1=client_error", "500:X.1=throttled"}, apiErr(500, "X.1"), Throttled},
		{"operator code beats operator status", []string{"500=client_error", "*:X.1=throttled"}, apiErr(500, "X.1"), Throttled},
		{"later rule wins", []string{"418=transient", "418=throttled"}, apiErr(418, ""), Throttled},
		{"defaults still apply", []string{"418=transient"}, apiErr(429, ""), Throttled},
		{"rule can mean success", []string{"409:CB.00060300=success"}, apiErr(409, "CB.00060300"), Success},
		{"rule can make a 403 unauthorized", []string{"403=unauthorized"}, apiErr(403, ""), Unauthorized},
		{"rule can override 2xx", []string{"200:CB.1=client_error"}, apiErr(200, "CB.1"), ClientError},
		{"wildcard rule", []string{"*=client_error"}, apiErr(503, ""), ClientError},
		{"rules leave transport errors alone", []string{"*=client_error"}, io.EOF, Transient},
		{"rules leave cancellation alone", []string{"*=client_error"}, context.Canceled, Canceled},
		{"rules leave nil alone", []string{"*=client_error"}, nil, Success},
		{"a rule on a code covers its family", []string{"*:CB.00031006=transient"}, apiErr(422, "DEVCB.00031006"), Transient},
		{"an exact family code beats the canonical", []string{"*:CB.1=transient", "*:DEVCB.1=throttled"}, apiErr(500, "DEVCB.1"), Throttled},
		{"APIG.0101 can be made a client error", []string{"404:APIG.0101=client_error"}, apiErr(404, "APIG.0101"), ClientError},
		{"a rule can pause as configuration", []string{"*:APIG.9999=configuration"}, apiErr(403, "APIG.9999"), Configuration},
		{"a 2xx without a code stays transient", []string{"*:CB.1=client_error"}, apiErr(200, ""), Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rules, err := ParseRules(tt.giveRules)
			require.NoError(t, err)
			c, err := NewClassifier(rules...)
			require.NoError(t, err)
			require.Equal(t, tt.want, c.Classify(tt.giveErr))
		})
	}
}

func TestNewClassifierRejectsInvalidRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		giveRule Rule
		wantErr  string
	}{
		{"status too low", Rule{Status: 42, Class: Transient}, `"42=transient": status 42 out of range`},
		{"status too high", Rule{Status: 600, Class: Transient}, "out of range"},
		{"bad class", Rule{Status: 500, Class: Class(99)}, "invalid class 99"},
		{"canceled", Rule{Status: 500, Class: Canceled}, "class canceled"},
		{"code with space", Rule{ErrorCode: "CB 1", Class: Transient}, `error code "CB 1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewClassifier(Rule{Status: 418, Class: Transient}, tt.giveRule)
			require.ErrorIs(t, err, ErrBadRule)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestParseRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want Rule
	}{
		{"500:CB.00060211=throttled", Rule{Status: 500, ErrorCode: "CB.00060211", Class: Throttled}},
		{"*:CB.00060201=client_error", Rule{ErrorCode: "CB.00060201", Class: ClientError}},
		{"418=transient", Rule{Status: 418, Class: Transient}},
		{"*=transient", Rule{Class: Transient}},
		{" 409 : CB.00060300 = Success ", Rule{Status: 409, ErrorCode: "CB.00060300", Class: Success}},
		{"403=forbidden", Rule{Status: 403, Class: Forbidden}},
		{"401=unauthorized", Rule{Status: 401, Class: Unauthorized}},
		{"*:APIG.0308=throttled", Rule{ErrorCode: "APIG.0308", Class: Throttled}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRule(tt.give)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			back, err := ParseRule(got.String())
			require.NoError(t, err)
			require.Equal(t, got, back, "String round-trips")
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give    string
		wantErr string
	}{
		{"", "want STATUS[:ERROR_CODE]=CLASS"},
		{"500", "want STATUS[:ERROR_CODE]=CLASS"},
		{"500:CB.00060211", "want STATUS[:ERROR_CODE]=CLASS"},
		{"=throttled", "missing status"},
		{":CB.1=throttled", "missing status"},
		{"abc=throttled", `status "abc" is not 100-599 or *`},
		{"CB.00060211=throttled", `status "CB.00060211" is not`},
		{"0=transient", `status "0" is not`},
		{"99=transient", `status "99" is not`},
		{"600=transient", `status "600" is not`},
		{"-1=transient", `status "-1" is not`},
		{"+500=transient", `status "+500" is not`},
		{"99999999999999999999=transient", "is not 100-599"},
		{"500:=throttled", "empty error code"},
		{"500:CB 1=throttled", `error code "CB 1"`},
		{"500:CB.1:X=throttled", `error code "CB.1:X"`},
		{"500=bogus", `unknown class "bogus"`},
		{"500=", `unknown class ""`},
		{"500=canceled", "class canceled"},
		{"500=throttled=transient", `unknown class "throttled=transient"`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRule(tt.give)
			require.ErrorIs(t, err, ErrBadRule)
			require.ErrorContains(t, err, fmt.Sprintf("%q", tt.give), "the error names the bad rule")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestParseRulesStopsAtFirstBadRule(t *testing.T) {
	t.Parallel()
	_, err := ParseRules([]string{"418=transient", "500:X=nope", "600=transient"})
	require.ErrorIs(t, err, ErrBadRule)
	require.ErrorContains(t, err, `"500:X=nope"`)

	rules, err := ParseRules(nil)
	require.NoError(t, err)
	require.Empty(t, rules)
}

func TestDefaultRulesIsACopy(t *testing.T) {
	t.Parallel()
	rules := DefaultRules()
	require.Contains(t, rules, Rule{ErrorCode: "CB.00060211", Class: Throttled})
	rules[0].Class = ClientError
	require.Equal(t, Throttled, Classify(apiErr(429, "")))
}

func TestClassNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give          Class
		wantName      string
		wantRetryable bool
		wantReason    string
	}{
		{Success, "success", false, ""},
		{ClientError, "client_error", false, "client_error"},
		{Throttled, "throttled", true, ""},
		{Transient, "transient", true, ""},
		{Unauthorized, "unauthorized", false, ""},
		{Forbidden, "forbidden", false, "client_error"},
		{Canceled, "canceled", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.wantName, tt.give.String())
			require.Equal(t, tt.wantRetryable, tt.give.Retryable())
			reason, ok := tt.give.DeadLetter()
			require.Equal(t, tt.wantReason, reason)
			require.Equal(t, tt.wantReason != "", ok)

			text, err := tt.give.MarshalText()
			require.NoError(t, err)
			var back Class
			require.NoError(t, back.UnmarshalText(text))
			require.Equal(t, tt.give, back)
		})
	}

	require.Equal(t, "Class(42)", Class(42).String())
	_, err := Class(-1).MarshalText()
	require.Error(t, err)
	var c Class
	require.ErrorContains(t, c.UnmarshalText([]byte("fatal")), `unknown class "fatal"`)
	got, err := ParseClass(" Client_Error ")
	require.NoError(t, err)
	require.Equal(t, ClientError, got)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		giveErr error
		want    time.Duration
	}{
		{"nil", nil, 0},
		{"no answer", io.EOF, 0},
		{"answer without hint", apiErr(429, ""), 0},
		{"hint", throttle(3 * time.Second), 3 * time.Second},
		{"wrapped hint", fmt.Errorf("recover: %w", throttle(time.Second)), time.Second},
		{"negative hint", &answer{status: 429, retryAfter: -time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, RetryAfter(tt.giveErr))
		})
	}
}
