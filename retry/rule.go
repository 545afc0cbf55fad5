package retry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Rule maps an API answer to a Class. A zero Status or an empty ErrorCode matches any.
type Rule struct {
	Status    int    // HTTP status, 100–599; 0 matches any status
	ErrorCode string // error_code from the body, exact match; "" matches any code
	Class     Class
}

// ErrBadRule is wrapped by every error about a malformed or invalid rule.
var ErrBadRule = errors.New("retry: bad classify rule")

// defaultRules is the SPEC's semantics table. The status families (2xx Success, other 4xx
// ClientError, 5xx and the rest Transient) are applied by Classifier.answer, not listed here.
var defaultRules = []Rule{
	// Throttles: the API Gateway answers 429/APIG.0308, CodeArts 500/CB.00060211.
	{Status: 429, Class: Throttled},
	{ErrorCode: "APIG.0308", Class: Throttled},
	{ErrorCode: "CB.00060211", Class: Throttled},
	// Configuration: the same answer for every job. Pause, never dead-letter.
	{ErrorCode: "APIG.0101", Class: Configuration}, // 404: API not published here (endpoint, region)
	{ErrorCode: "APIG.0302", Class: Configuration}, // 403: IAM user not authorised for the API
	{ErrorCode: "APIG.0306", Class: Configuration}, // 403: access denied
	{ErrorCode: "APIG.0310", Class: Configuration}, // 403: project unavailable
	// Credentials: bad signature, expired or wrong-region token. The gateway locks an AK
	// after repeated failures, so the pause probes rarely.
	{ErrorCode: "APIG.0301", Class: Unauthorized},
	{ErrorCode: "APIG.0307", Class: Unauthorized},
	// Backend or IAM unavailable, CodeArts busy or failing: the API, not the request.
	{ErrorCode: "APIG.0201", Class: Transient}, // 502/504
	{ErrorCode: "APIG.0613", Class: Transient}, // 503: IAM unavailable
	{ErrorCode: "CB.00060100", Class: Transient},
	{ErrorCode: "CB.00060101", Class: Transient},
	// CodeArts' own client errors, whatever the status they come with.
	{ErrorCode: "CB.00060200", Class: ClientError}, // invalid parameter
	{ErrorCode: "CB.00060201", Class: ClientError}, // invalid job id
	{ErrorCode: "CB.00031006", Class: ClientError}, // 422: job not found (DEVCB. on v1)
	{ErrorCode: "CB.00060214", Class: ClientError}, // 404: job not found
	{Status: 401, Class: Unauthorized},
	{Status: 403, Class: Forbidden},
	{Status: 400, Class: ClientError},
	{Status: 404, Class: ClientError},
	{Status: 405, Class: ClientError},
	{Status: 409, Class: ClientError},
	{Status: 410, Class: ClientError},
	{Status: 422, Class: ClientError},
	{Status: 408, Class: Transient},
}

// DefaultRules returns a copy of the built-in rules, for help texts and docs. On top of them,
// a 2xx status is Success, any other 4xx ClientError, and 5xx or anything else Transient.
func DefaultRules() []Rule { return append([]Rule(nil), defaultRules...) }

// String formats r as ParseRule reads it: "500:CB.00060211=throttled", "*:APIG.0308=throttled",
// "418=transient".
func (r Rule) String() string {
	status := "*"
	if r.Status != 0 {
		status = strconv.Itoa(r.Status)
	}
	if r.ErrorCode != "" {
		return status + ":" + r.ErrorCode + "=" + r.Class.String()
	}
	return status + "=" + r.Class.String()
}

// ParseRule reads a rule written STATUS[:ERROR_CODE]=CLASS, where STATUS is 100–599 or "*"
// (any) and CLASS a Class name other than canceled: "500:CB.00060211=throttled",
// "*:CB.00060201=client_error", "418=transient". The error wraps ErrBadRule and quotes s.
func ParseRule(s string) (Rule, error) {
	bad := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("%w %q: %s", ErrBadRule, s, fmt.Sprintf(format, args...))
	}
	match, class, ok := strings.Cut(s, "=")
	if !ok {
		return bad("want STATUS[:ERROR_CODE]=CLASS, e.g. 500:CB.00060211=throttled")
	}
	status, code, hasCode := strings.Cut(strings.TrimSpace(match), ":")
	var r Rule
	switch status = strings.TrimSpace(status); status {
	case "*":
	case "":
		return bad("missing status: use * for any status")
	default:
		n, err := strconv.Atoi(status)
		if err != nil || !isDigits(status) || n < 100 || n > 599 {
			return bad("status %q is not 100-599 or *", status)
		}
		r.Status = n
	}
	if hasCode {
		r.ErrorCode = strings.TrimSpace(code)
		if r.ErrorCode == "" {
			return bad("empty error code after ':'")
		}
	}
	c, err := ParseClass(class)
	if err != nil {
		return bad("unknown class %q (want one of %s)", strings.TrimSpace(class), ruleClassNames())
	}
	r.Class = c
	if err := r.check(); err != nil {
		return bad("%s", err)
	}
	return r, nil
}

// ParseRules parses each string with ParseRule and stops at the first bad one.
func ParseRules(specs []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(specs))
	for _, s := range specs {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func (r Rule) validate() error {
	if err := r.check(); err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadRule, r.String(), err)
	}
	return nil
}

func (r Rule) check() error {
	if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
		return fmt.Errorf("status %d out of range 100-599", r.Status)
	}
	for _, ch := range r.ErrorCode {
		if !isCodeChar(ch) {
			return fmt.Errorf("error code %q may hold only letters, digits, '.', '_' and '-'", r.ErrorCode)
		}
	}
	if !r.Class.valid() {
		return fmt.Errorf("invalid class %d", int(r.Class))
	}
	if r.Class == Canceled {
		return errors.New("class canceled describes our own context, not an answer")
	}
	return nil
}

func ruleClassNames() string {
	names := make([]string, 0, numClasses-1)
	for c := range numClasses {
		if c != Canceled {
			names = append(names, c.String())
		}
	}
	return strings.Join(names, ", ")
}

func isDigits(s string) bool {
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return s != ""
}

// isCodeChar reports whether ch may appear in an error code ("CB.00060211", "APIG.0308").
func isCodeChar(ch rune) bool {
	switch {
	case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z':
		return true
	default:
		return ch == '.' || ch == '_' || ch == '-'
	}
}
