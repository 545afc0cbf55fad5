package codeartssim

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Error codes the simulator answers with.
const (
	CodeInvalidParam    = "CB.00060200" // 400: job_id malformed
	CodeForbidden       = "CB.00060201" // 403: no permission on this one job (job-level, dead-lettered)
	CodeIAMDenied       = "APIGW.0302"  // 403: the IAM user lacks the API permission (every job)
	CodeJobNotFound     = "CB.00060204" // 404: no such job
	CodeInternal        = "CB.00060001" // 500: internal error
	CodeTooManyRequests = "CB.00060211" // 500: CodeArts throttling
	CodeAuthFailed      = "APIGW.0301"  // 401: authentication failed
	CodeNoSuchAPI       = "APIG.0101"   // 404: unknown path or method
	CodeThrottled       = "APIG.0308"   // 429: gateway throttling
	CodeBackendTimeout  = "APIG.0201"   // 504
	CodeBackendDown     = "APIG.0202"   // 502
	CodeUnavailable     = "APIG.0203"   // 503
)

// DefaultMaxClockSkew is how far X-Sdk-Date may be from the server's clock.
const DefaultMaxClockSkew = 15 * time.Minute

// Outcome is an answer the simulator gives instead of success.
type Outcome struct {
	Status int    // HTTP status; 2xx means success
	Code   string // error_code
	Msg    string // error_msg
}

// StandardOutcome returns the simulator's usual answer for an HTTP status:
// for example 404 → CB.00060204, 429 → APIG.0308, 503 → APIG.0203.
func StandardOutcome(status int) Outcome {
	switch status {
	case http.StatusBadRequest:
		return Outcome{status, CodeInvalidParam, "Invalid request parameter: job_id"}
	case http.StatusUnauthorized:
		return Outcome{status, CodeAuthFailed, "Incorrect IAM authentication information: verify aksk signature fail"}
	case http.StatusForbidden:
		return Outcome{status, CodeIAMDenied, "The IAM user is not authorized to call this API"}
	case http.StatusNotFound:
		return Outcome{status, CodeJobNotFound, "The build job does not exist"}
	case http.StatusTooManyRequests:
		return Outcome{status, CodeThrottled, "The throttling threshold has been reached: policy user over ratelimit"}
	case http.StatusInternalServerError:
		return Outcome{status, CodeInternal, "Internal server error"}
	case http.StatusBadGateway:
		return Outcome{status, CodeBackendDown, "Backend unavailable"}
	case http.StatusServiceUnavailable:
		return Outcome{status, CodeUnavailable, "Service unavailable"}
	case http.StatusGatewayTimeout:
		return Outcome{status, CodeBackendTimeout, "Backend timeout"}
	}
	if status >= 200 && status < 300 {
		return Outcome{Status: status}
	}
	return Outcome{status, fmt.Sprintf("CB.0006%04d", status), http.StatusText(status)}
}

// BackendThrottle is CodeArts' own throttling answer: HTTP 500 with
// CB.00060211, "Too many requests".
var BackendThrottle = Outcome{http.StatusInternalServerError, CodeTooManyRequests, "Too many requests"}

// StandardPrefixOutcomes maps the job id prefixes "400", "403" and "404" to
// those statuses, for WithOutcomes.
func StandardPrefixOutcomes() map[string]Outcome {
	return map[string]Outcome{
		"400": StandardOutcome(http.StatusBadRequest),
		"403": StandardOutcome(http.StatusForbidden),
		"404": StandardOutcome(http.StatusNotFound),
	}
}

// settings is one immutable configuration snapshot. Options modify a copy,
// never a map or slice in place.
type settings struct {
	ak, sk  string
	token   string
	maxSkew time.Duration

	latency, jitter time.Duration

	errRate     float64
	errStatuses []int

	throttle        float64 // 429 APIG.0308
	backendThrottle float64 // 500 CB.00060211
	retryAfter      time.Duration

	limiter *rate.Limiter

	outage  bool
	windows []window

	outcomes map[string]Outcome
	prefixes []string // keys of outcomes, longest first

	hangProb   float64
	hangPrefix string
	hangFor    time.Duration

	seed *uint64
}

type window struct{ from, to time.Time }

func defaultSettings() *settings {
	return &settings{
		maxSkew:     DefaultMaxClockSkew,
		errStatuses: []int{500, 502, 503, 504},
		retryAfter:  time.Second,
	}
}

// Option configures a Server, at New or later through Configure.
type Option func(*settings)

// WithCredentials makes the server require requests signed (SDK-HMAC-SHA256)
// with this AK/SK pair. Without it and without WithToken, requests are not
// authenticated.
func WithCredentials(ak, sk string) Option {
	return func(s *settings) { s.ak, s.sk = ak, sk }
}

// WithToken also accepts requests whose X-Auth-Token equals tok.
func WithToken(tok string) Option {
	return func(s *settings) { s.token = tok }
}

// WithMaxClockSkew sets how far X-Sdk-Date may be from the server's clock
// (default 15 minutes).
func WithMaxClockSkew(d time.Duration) Option {
	return func(s *settings) { s.maxSkew = d }
}

// WithLatency delays every API answer by base plus a uniformly random part of
// jitter.
func WithLatency(base, jitter time.Duration) Option {
	return func(s *settings) { s.latency, s.jitter = max(base, 0), max(jitter, 0) }
}

// WithErrorRate answers a fraction p of recovers with a 5xx status drawn
// uniformly from statuses (default 500, 502, 503, 504), with the standard
// codes.
func WithErrorRate(p float64, statuses ...int) Option {
	return func(s *settings) {
		s.errRate = p
		if len(statuses) > 0 {
			s.errStatuses = slices.Clone(statuses)
		}
	}
}

// WithThrottle answers a fraction p of recovers with 429 APIG.0308 and a
// Retry-After header.
func WithThrottle(p float64) Option {
	return func(s *settings) { s.throttle = p }
}

// WithBackendThrottle answers a fraction p of recovers with 500 CB.00060211
// "Too many requests".
func WithBackendThrottle(p float64) Option {
	return func(s *settings) { s.backendThrottle = p }
}

// WithRetryAfter sets the Retry-After of random and scripted 429s
// (default 1s; rounded up to whole seconds on the wire).
func WithRetryAfter(d time.Duration) Option {
	return func(s *settings) { s.retryAfter = d }
}

// WithRateLimit admits rps recovers per second with bursts of burst (a token
// bucket); the rest get 429 APIG.0308 with Retry-After. rps <= 0 removes the
// limit.
func WithRateLimit(rps float64, burst int) Option {
	return func(s *settings) {
		if rps <= 0 {
			s.limiter = nil
			return
		}
		s.limiter = rate.NewLimiter(rate.Limit(rps), max(burst, 1))
	}
}

// WithOutage answers every recover with 503 while on is true.
func WithOutage(on bool) Option {
	return func(s *settings) { s.outage = on }
}

// WithOutageWindow answers every recover with 503 between from and to.
// Windows add up.
func WithOutageWindow(from, to time.Time) Option {
	return func(s *settings) {
		s.windows = append(slices.Clip(s.windows), window{from, to})
	}
}

// WithOutcome answers recovers of jobs whose id starts with prefix with o
// (the longest matching prefix wins).
func WithOutcome(prefix string, o Outcome) Option {
	return WithOutcomes(map[string]Outcome{prefix: o})
}

// WithOutcomes adds prefix outcomes, as WithOutcome; see
// StandardPrefixOutcomes for the usual set.
func WithOutcomes(m map[string]Outcome) Option {
	return func(s *settings) {
		next := maps.Clone(s.outcomes)
		if next == nil {
			next = make(map[string]Outcome, len(m))
		}
		maps.Copy(next, m)
		s.outcomes = next
		s.prefixes = slices.SortedFunc(maps.Keys(next), func(a, b string) int {
			if len(a) != len(b) {
				return len(b) - len(a)
			}
			return strings.Compare(a, b)
		})
	}
}

// WithoutOutcomes removes all prefix outcomes.
func WithoutOutcomes() Option {
	return func(s *settings) { s.outcomes, s.prefixes = nil, nil }
}

// WithApplyThenHang makes a fraction p of recovers apply (the job counts as
// recovered) and then answer 200 only after d, so that a client with a
// shorter timeout gives up on a call that did succeed.
func WithApplyThenHang(p float64, d time.Duration) Option {
	return func(s *settings) { s.hangProb, s.hangFor = p, d }
}

// WithApplyThenHangPrefix does what WithApplyThenHang does for every job
// whose id starts with prefix ("" turns it off).
func WithApplyThenHangPrefix(prefix string, d time.Duration) Option {
	return func(s *settings) { s.hangPrefix, s.hangFor = prefix, d }
}

// WithSeed seeds the generator behind the random faults, for reproducible
// runs (with sequential requests).
func WithSeed(seed uint64) Option {
	return func(s *settings) { s.seed = &seed }
}

func (s *settings) clone() *settings {
	c := *s
	c.seed = nil
	return &c
}

func (s *settings) inOutage(now time.Time) bool {
	if s.outage {
		return true
	}
	for _, w := range s.windows {
		if !now.Before(w.from) && now.Before(w.to) {
			return true
		}
	}
	return false
}

func (s *settings) outcomeFor(jobID string) (Outcome, bool) {
	for _, p := range s.prefixes {
		if strings.HasPrefix(jobID, p) {
			return s.outcomes[p], true
		}
	}
	return Outcome{}, false
}
