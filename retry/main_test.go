package retry

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// answer is a stand-in for codearts.*APIError.
type answer struct {
	status     int
	code       string
	retryAfter time.Duration
}

func (a *answer) Error() string                 { return fmt.Sprintf("api: %d %s", a.status, a.code) }
func (a *answer) HTTPStatus() int               { return a.status }
func (a *answer) APIErrorCode() string          { return a.code }
func (a *answer) RetryAfterHint() time.Duration { return a.retryAfter }

func apiErr(status int, code string) error { return &answer{status: status, code: code} }

func throttle(retryAfter time.Duration) error {
	return &answer{status: 429, code: "APIG.0308", retryAfter: retryAfter}
}
