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

// Error codes the simulator answers with: the real ones, as the CodeArts
// Build reference and live answers give them. CB.* codes come from CodeArts
// behind the gateway, APIG.* from the API Gateway in front of it.
const (
	CodeInvalidParam    = "CB.00060200"    // 400: invalid request parameter
	CodeInvalidJobID    = "CB.00060201"    // 400: job_id is not a valid job id
	CodeJobNotFound     = "CB.00031006"    // 422: no such job (v3 routes)
	CodeJobNotFoundV1   = "DEVCB.00031006" // 422: no such job (v1 routes)
	CodeJobMissing      = "CB.00060214"    // 404: no such job
	CodeBusy            = "CB.00060100"    // 500: the service is busy
	CodeInternal        = "CB.00060101"    // 500: internal error
	CodeTooManyRequests = "CB.00060211"    // CodeArts throttling, sent as 500

	CodeNoSuchAPI          = "APIG.0101" // 404: API not published here: wrong endpoint or region
	CodeBackendUnavailable = "APIG.0201" // 502 and 504: backend unavailable or timed out
	CodeAuthFailed         = "APIG.0301" // 401: bad signature or token
	CodeIAMDenied          = "APIG.0302" // 403: the IAM user is not authorised to call the API (every job)
	CodeAccessDenied       = "APIG.0306" // 403: access denied (every job)
	CodeTokenExpired       = "APIG.0307" // 401: expired or wrong-region token
	CodeThrottled          = "APIG.0308" // 429: gateway throttling
	CodeProjectUnavailable = "APIG.0310" // 403: the project is unavailable (every job)
	CodeIAMUnavailable     = "APIG.0613" // 503: IAM unavailable
)

// DefaultMaxClockSkew is how far X-Sdk-Date may be from the server's clock.
const DefaultMaxClockSkew = 15 * time.Minute

// Outcome is an answer the simulator gives instead of success.
type Outcome struct {
	Status int    // HTTP status; 2xx means success
	Code   string // error_code; "" leaves the field out of the body
	Msg    string // error_msg
}

// StandardOutcome returns the simulator's usual answer for an HTTP status,
// as the real API gives it: 400 → CB.00060200, 401 → APIG.0301, 403 → a
// job-level 403 without an error_code, 404 → CB.00060214, 422 →
// CB.00031006, 429 → APIG.0308, 500 → CB.00060101, 502 and 504 →
// APIG.0201, 503 → APIG.0613. The configuration-level 403s (APIG.0302,
// APIG.0306, APIG.0310) are Outcomes of their own.
func StandardOutcome(status int) Outcome {
	switch status {
	case http.StatusBadRequest:
		return Outcome{status, CodeInvalidParam, "Invalid request parameter: job_id"}
	case http.StatusUnauthorized:
		return Outcome{status, CodeAuthFailed, "Incorrect IAM authentication information: verify aksk signature fail"}
	case http.StatusForbidden:
		// CodeArts refuses one job (e.g. the user is not a member of its
		// project) with a 403 that carries no error_code: the worker reads
		// a code-less 403 as job-level.
		return Outcome{Status: status, Msg: "You do not have permission to operate this build job"}
	case http.StatusNotFound:
		return Outcome{status, CodeJobMissing, "The build job does not exist"}
	case http.StatusUnprocessableEntity:
		return Outcome{status, CodeJobNotFound, "The build job does not exist or has been deleted"}
	case http.StatusTooManyRequests:
		return Outcome{status, CodeThrottled, "The throttling threshold has been reached: policy user over ratelimit"}
	case http.StatusInternalServerError:
		return Outcome{status, CodeInternal, "Internal server error"}
	case http.StatusBadGateway:
		return Outcome{status, CodeBackendUnavailable, "Backend unavailable"}
	case http.StatusServiceUnavailable:
		return Outcome{status, CodeIAMUnavailable, "The IAM service is currently unavailable"}
	case http.StatusGatewayTimeout:
		return Outcome{status, CodeBackendUnavailable, "Backend timeout"}
	}
	if status >= 200 && status < 300 {
		return Outcome{Status: status}
	}
	return Outcome{status, fmt.Sprintf("CB.0006%04d", status), http.StatusText(status)}
}

// BackendThrottle is CodeArts' own throttling answer: HTTP 500 with
// CB.00060211, "Too many requests".
var BackendThrottle = Outcome{http.StatusInternalServerError, CodeTooManyRequests, "Too many requests"}

// IAMDenied is the gateway's configuration-level 403: the IAM user may not
// call the API at all, so every job gets it.
var IAMDenied = Outcome{http.StatusForbidden, CodeIAMDenied, "The IAM user is not authorized to call this API"}

// NoSuchAPI is the gateway's 404 for an API not published in this
// environment: a wrong endpoint or region, or an unknown path or method.
var NoSuchAPI = Outcome{http.StatusNotFound, CodeNoSuchAPI, "The API does not exist or has not been published in the environment"}

// StandardPrefixOutcomes maps the job id prefixes "400", "403", "404" and
// "422" to StandardOutcome of that status, for WithOutcomes.
func StandardPrefixOutcomes() map[string]Outcome {
	return map[string]Outcome{
		"400": StandardOutcome(http.StatusBadRequest),
		"403": StandardOutcome(http.StatusForbidden),
		"404": StandardOutcome(http.StatusNotFound),
		"422": StandardOutcome(http.StatusUnprocessableEntity),
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

	route404        bool
	route404Windows []window
	unauthWindows   []window

	failStatus   float64 // 200 {"status":"fail"}
	errorOn200   float64 // 200 {"error_code":"CB.00060101",…}
	htmlErrors   float64 // 502 text/html
	htmlSuccess  float64 // 200 text/html
	stringBodies float64 // error bodies sent as a JSON string

	outcomes map[string]Outcome
	prefixes []string // keys of outcomes, longest first

	hangProb   float64
	hangPrefix string
	hangFor    time.Duration

	seed *uint64

	jobSeed   *JobSeed  // applied once, at New or Configure
	listShape ListShape // GET /v3/{project_id}/jobs
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

// WithRoute404 answers every request with 404 APIG.0101 ("the API does not
// exist or has not been published") while on is true, as the gateway does for
// a wrong endpoint or region: before the signature is checked, without
// latency and without reaching the job.
func WithRoute404(on bool) Option {
	return func(s *settings) { s.route404 = on }
}

// WithRoute404Window does what WithRoute404 does between from and to.
// Windows add up.
func WithRoute404Window(from, to time.Time) Option {
	return func(s *settings) {
		s.route404Windows = append(slices.Clip(s.route404Windows), window{from, to})
	}
}

// WithUnauthorizedWindow answers every recover between from and to with 401
// APIG.0301, whatever its signature, as the gateway does for a locked or
// rotated access key. Windows add up.
func WithUnauthorizedWindow(from, to time.Time) Option {
	return func(s *settings) {
		s.unauthWindows = append(slices.Clip(s.unauthWindows), window{from, to})
	}
}

// WithFailStatus answers a fraction p of recovers with 200
// {"status":"fail"}: the call went through, the job was not recovered.
func WithFailStatus(p float64) Option {
	return func(s *settings) { s.failStatus = p }
}

// WithErrorOn200 answers a fraction p of recovers with HTTP 200 and an error
// body, {"error_code":"CB.00060101","error_msg":"…"}: not recovered.
func WithErrorOn200(p float64) Option {
	return func(s *settings) { s.errorOn200 = p }
}

// WithHTMLErrors answers a fraction p of recovers with a proxy's 502 page:
// Content-Type text/html, an nginx-like HTML body, no JSON at all.
func WithHTMLErrors(p float64) Option {
	return func(s *settings) { s.htmlErrors = p }
}

// WithHTMLSuccess answers a fraction p of recovers with a proxy's 200 page
// (Content-Type text/html): a 2xx that does not say the recover was applied,
// and it was not.
func WithHTMLSuccess(p float64) Option {
	return func(s *settings) { s.htmlSuccess = p }
}

// WithStringBodies sends a fraction p of JSON error answers (after
// authentication: not the gateway's 401s or route 404s) with the body
// encoded once more as a JSON string, "{\"error_code\":…}" quotes included,
// as some CodeArts endpoints do; the SDK then finds no error_code.
func WithStringBodies(p float64) Option {
	return func(s *settings) { s.stringBodies = p }
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

// WithJobs seeds the catalog with the jobs seed describes (see JobSeed),
// once, when the option is applied.
func WithJobs(seed JobSeed) Option {
	return func(s *settings) { s.jobSeed = &seed }
}

// WithListShape sets how GET /v3/{project_id}/jobs answers (default
// ShapeSDK).
func WithListShape(shape ListShape) Option {
	return func(s *settings) { s.listShape = shape }
}

func (s *settings) clone() *settings {
	c := *s
	c.seed = nil
	c.jobSeed = nil
	return &c
}

func (s *settings) inOutage(now time.Time) bool {
	return s.outage || inWindow(s.windows, now)
}

func (s *settings) inRoute404(now time.Time) bool {
	return s.route404 || inWindow(s.route404Windows, now)
}

func inWindow(ws []window, now time.Time) bool {
	for _, w := range ws {
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
