package retry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Class is what an error means to the worker: whether the request is done, must be retried,
// or must stop the pool. The zero value is Success.
type Class int

// The classes, in the order of the SPEC's semantics table.
const (
	// Success: the call did what was asked (nil error, 2xx). Ack.
	Success Class = iota
	// ClientError: the request itself is wrong and retrying cannot help (4xx, CB.00060200/201).
	// Dead-letter with reason client_error.
	ClientError
	// Throttled: the API asks us to slow down (429, APIG.0308, CB.00060211). Retry after the
	// Retry-After hint or a backoff, lower the process rate; does not spend the attempt budget.
	Throttled
	// Transient: the API or the network failed, not the request (408, 5xx, timeouts, resets,
	// and any error this package cannot recognise). Retry with backoff.
	Transient
	// Unauthorized: the credentials are wrong for every job (401). Pause the pool, never dead-letter.
	Unauthorized
	// Forbidden: the credentials lack a permission (403). Dead-lettered as client_error on its
	// own, but a run of them on distinct jobs pauses the pool like Unauthorized.
	Forbidden
	// Canceled: our own context ended (shutdown); the outcome is unknown, nothing is decided.
	Canceled
	// Configuration: the answer is the same for every job because the worker is set up wrong
	// (APIG.0101: the API is not published at this endpoint or region; APIG.0302/0306/0310:
	// the IAM user may not call it, access denied, project unavailable). Pause like
	// Unauthorized, never dead-letter.
	Configuration

	numClasses
)

var classNames = [numClasses]string{
	Success:       "success",
	ClientError:   "client_error",
	Throttled:     "throttled",
	Transient:     "transient",
	Unauthorized:  "unauthorized",
	Forbidden:     "forbidden",
	Canceled:      "canceled",
	Configuration: "configuration",
}

// ReasonClientError is the dead-letter reason for requests classified ClientError or Forbidden.
const ReasonClientError = "client_error"

// String returns the snake_case name used in logs, metric labels and rules ("client_error").
func (c Class) String() string {
	if c.valid() {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// MarshalText encodes c as its String name.
func (c Class) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, fmt.Errorf("retry: invalid class %d", int(c))
	}
	return []byte(classNames[c]), nil
}

// UnmarshalText decodes a name produced by String (case-insensitive).
func (c *Class) UnmarshalText(text []byte) error {
	v, err := ParseClass(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseClass returns the Class named s ("throttled", "client_error", …; case-insensitive).
func ParseClass(s string) (Class, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for c, n := range classNames {
		if n == name {
			return Class(c), nil
		}
	}
	return 0, fmt.Errorf("retry: unknown class %q (want one of %s)", s, strings.Join(classNames[:], ", "))
}

// Pauses reports whether the class stops consumption fleet-wide until a probe succeeds
// (Unauthorized, Configuration): wrong for every job, so never dead-lettered.
func (c Class) Pauses() bool { return c == Unauthorized || c == Configuration }

// Retryable reports whether a request with this class should be tried again (Throttled, Transient).
func (c Class) Retryable() bool { return c == Throttled || c == Transient }

// DeadLetter returns the dead-letter reason for a class that ends a request as a failure on
// its own (ClientError and Forbidden: "client_error"), and false for every other class.
func (c Class) DeadLetter() (reason string, ok bool) {
	if c == ClientError || c == Forbidden {
		return ReasonClientError, true
	}
	return "", false
}

func (c Class) valid() bool { return c >= 0 && c < numClasses }

// Answer is an error that carries the API's answer. This package recognises API errors only
// through it (codearts.*APIError implements it), so it needs no import of the SDK wrapper.
type Answer interface {
	error
	// HTTPStatus is the response's status code, 0 if unknown.
	HTTPStatus() int
	// APIErrorCode is the error_code from the body ("CB.00060211"), "" if none.
	APIErrorCode() string
	// RetryAfterHint is the response's Retry-After, 0 if none.
	RetryAfterHint() time.Duration
}

// RetryAfter returns the Retry-After hint carried by an Answer in err's chain, or 0.
func RetryAfter(err error) time.Duration {
	if a, ok := errors.AsType[Answer](err); ok {
		if d := a.RetryAfterHint(); d > 0 {
			return d
		}
	}
	return 0
}

// defaultClassifier holds only the default rules; Classify and nil *Classifier use it.
var defaultClassifier = mustClassifier()

func mustClassifier() *Classifier {
	c, err := NewClassifier()
	if err != nil {
		panic(err) // unreachable: no operator rules
	}
	return c
}

// Classify returns the Class of err under the default rules (see DefaultRules and
// (*Classifier).Classify). It is safe for concurrent use.
func Classify(err error) Class { return defaultClassifier.Classify(err) }

// Classifier classifies errors with operator rules on top of the defaults. It is immutable
// after NewClassifier and safe for concurrent use; a nil *Classifier uses the defaults only.
type Classifier struct {
	operator table
	defaults table
}

// NewClassifier returns a Classifier that applies the operator rules before the defaults.
// Later operator rules replace earlier ones with the same Status and ErrorCode, so a rule
// given last (on the command line) wins. It fails, naming the rule, on an out-of-range
// status or class.
func NewClassifier(rules ...Rule) (*Classifier, error) {
	c := &Classifier{defaults: newTable(), operator: newTable()}
	for _, r := range defaultRules {
		c.defaults.add(r)
	}
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return nil, err
		}
		c.operator.add(r)
	}
	return c, nil
}

// Classify returns the Class of err. In order:
//
//  1. nil is Success.
//  2. An Answer in err's chain (errors.AsType) is looked up in the operator rules, then in
//     the defaults; within each, the most specific rule wins: status and error code, then
//     error code alone, then status alone, then a rule naming neither. An error code is
//     looked up as given, then in its canonical form (APIGW. → APIG., DEVCB. and DEV.CB. →
//     CB.). An Answer with a 2xx status is one whose body did not say the call was applied
//     (200 {"status":"fail"}, a 2xx with an error_code, an HTML page): only its error code
//     classifies it, and an unknown or missing code is Transient, never Success and never a
//     dead letter. With no matching rule: other 4xx are ClientError; 5xx and everything else
//     (no status, 1xx, 3xx) Transient.
//  3. context.Canceled in the chain is Canceled.
//  4. Anything else is Transient: deadline exceeded, net.Error and timeouts, connection
//     refused or reset, io.EOF and io.ErrUnexpectedEOF, *url.Error, and unknown errors alike,
//     since dead-lettering a request over an error nobody recognised would lose it.
func (c *Classifier) Classify(err error) Class {
	if err == nil {
		return Success
	}
	if a, ok := errors.AsType[Answer](err); ok {
		if c == nil {
			c = defaultClassifier
		}
		return c.answer(a.HTTPStatus(), a.APIErrorCode())
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	// context.DeadlineExceeded (the per-call timeout), net.Error, syscall.ECONNREFUSED and
	// ECONNRESET, io.EOF, io.ErrUnexpectedEOF, *url.Error and unrecognised errors: the call
	// may not have reached the API, or its answer was lost. Retrying is always safe (recover
	// is idempotent); dead-lettering is not.
	return Transient
}

func (c *Classifier) answer(status int, code string) Class {
	canon := CanonicalCode(code)
	if cl, ok := c.operator.lookupCode(status, code, canon); ok {
		return cl
	}
	if status >= 200 && status <= 299 {
		// Not applied, whatever the status says: only a code can tell more.
		if cl, ok := c.defaults.codeOnly(status, code, canon); ok {
			return cl
		}
		return Transient
	}
	if cl, ok := c.defaults.lookupCode(status, code, canon); ok {
		return cl
	}
	switch {
	case status >= 400 && status <= 499:
		return ClientError
	default: // 5xx, 0 (unknown), 1xx, 3xx: not the request's fault as far as we can tell.
		return Transient
	}
}

// codePrefixes maps the prefixes of one family of error codes to the canonical one: the
// gateway answers APIG. or APIGW., CodeArts CB., DEVCB. (v1 routes) or DEV.CB.
var codePrefixes = [...]struct{ from, to string }{
	{"APIGW.", "APIG."},
	{"DEVCB.", "CB."},
	{"DEV.CB.", "CB."},
}

// CanonicalCode returns code with its family prefix in canonical form ("APIGW.0308" →
// "APIG.0308", "DEVCB.00031006" → "CB.00031006"); other codes are returned unchanged.
func CanonicalCode(code string) string {
	for _, p := range codePrefixes {
		if rest, ok := strings.CutPrefix(code, p.from); ok {
			return p.to + rest
		}
	}
	return code
}

// lookupCode looks code up as given, then in its canonical form canon, then status alone.
func (t *table) lookupCode(status int, code, canon string) (Class, bool) {
	if cl, ok := t.codeOnly(status, code, canon); ok {
		return cl, true
	}
	if cl, ok := t.status[status]; ok {
		return cl, true
	}
	if t.any != nil {
		return *t.any, true
	}
	return 0, false
}

// codeOnly looks up the rules that name an error code: status and code, then code alone,
// for code as given and then for its canonical form.
func (t *table) codeOnly(status int, code, canon string) (Class, bool) {
	if code == "" {
		return 0, false
	}
	if cl, ok := t.byCode(status, code); ok {
		return cl, true
	}
	if canon != code {
		return t.byCode(status, canon)
	}
	return 0, false
}

func (t *table) byCode(status int, code string) (Class, bool) {
	if cl, ok := t.pair[pairKey{status, code}]; ok {
		return cl, true
	}
	cl, ok := t.code[code]
	return cl, ok
}

type pairKey struct {
	status int
	code   string
}

// table indexes rules by what they name, so a lookup is at most four map reads.
type table struct {
	pair   map[pairKey]Class
	code   map[string]Class
	status map[int]Class
	any    *Class
}

func newTable() table {
	return table{pair: map[pairKey]Class{}, code: map[string]Class{}, status: map[int]Class{}}
}

func (t *table) add(r Rule) {
	switch {
	case r.Status != 0 && r.ErrorCode != "":
		t.pair[pairKey{r.Status, r.ErrorCode}] = r.Class
	case r.ErrorCode != "":
		t.code[r.ErrorCode] = r.Class
	case r.Status != 0:
		t.status[r.Status] = r.Class
	default:
		cl := r.Class
		t.any = &cl
	}
}
