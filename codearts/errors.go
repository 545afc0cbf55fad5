package codearts

import (
	"errors"
	"fmt"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrUnknownRegion is wrapped by errors for a region outside
	// Config.Regions (or one the SDK does not know). A request naming one is
	// invalid: retrying cannot help.
	ErrUnknownRegion = errors.New("unknown region")

	// ErrInvalidJobID is wrapped by errors for a job id that is not exactly
	// 32 ASCII letters or digits; such a request is never sent.
	ErrInvalidJobID = errors.New("invalid job id: want 32 ASCII letters or digits")
)

// maxErrorMsg bounds APIError.ErrorMsg: a gateway may answer with a whole
// HTML page, and the message travels into logs and dead letters.
const maxErrorMsg = 512

// APIError is an answer from the API or its gateway that does not say the
// recover was applied: a non-2xx, or a 2xx whose body is not
// {"status":"success"} (StatusCode is then 2xx, and ErrorMsg starts with
// "recover not applied").
//
// It satisfies the interface the retry package declares (HTTPStatus,
// APIErrorCode, RetryAfterHint) without this package importing it.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// ErrorCode is the body's error_code, e.g. "CB.00060211" or "APIG.0308";
	// empty when the body had none.
	ErrorCode string
	// ErrorMsg is the body's error_msg (or the raw body, cut to 512 bytes).
	ErrorMsg string
	// RequestID is the response's X-Request-Id.
	RequestID string
	// RetryAfter is the response's Retry-After (seconds or HTTP-date) as a
	// duration from when the answer arrived; zero when absent or past.
	RetryAfter time.Duration
}

// Error reads like "codearts: 404 CB.00060214: job not found (request_id …)".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("codearts: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.ErrorCode != "" {
		b.WriteString(" ")
		b.WriteString(e.ErrorCode)
	}
	if e.ErrorMsg != "" {
		b.WriteString(": ")
		b.WriteString(e.ErrorMsg)
	}
	if e.RequestID != "" {
		b.WriteString(" (request_id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// HTTPStatus returns StatusCode.
func (e *APIError) HTTPStatus() int { return e.StatusCode }

// APIErrorCode returns ErrorCode.
func (e *APIError) APIErrorCode() string { return e.ErrorCode }

// RetryAfterHint returns RetryAfter.
func (e *APIError) RetryAfterHint() time.Duration { return e.RetryAfter }

// APIErrorMsg is the API's error_msg.
func (e *APIError) APIErrorMsg() string { return e.ErrorMsg }

// APIRequestID is the API's request id (X-Request-Id).
func (e *APIError) APIRequestID() string { return e.RequestID }

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ValidJobID reports whether id is exactly 32 ASCII letters or digits, the
// form the API accepts.
func ValidJobID(id string) bool { return jobid.Valid(id) }

// wrap wraps err as "recover <job>: err".
func wrap(jobID string, err error) error {
	return fmt.Errorf("recover %s: %w", jobID, err)
}
