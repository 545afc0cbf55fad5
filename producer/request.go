package producer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
)

// Defaults shared with the worker (its queue and decoder settings; a test
// checks they agree).
const (
	// DefaultSubject is the worker's request subject.
	DefaultSubject = "codearts.build.recover"
	// DefaultStream is the worker's request stream.
	DefaultStream = "CODEARTS_RECOVER"
	// DefaultMaxBytes is the largest body the worker accepts by default
	// (worker run --max-body-bytes).
	DefaultMaxBytes = 64 << 10
)

// Limits of the request's free-text fields, as the worker checks them.
const (
	MaxReasonChars = 256 // reason, in characters
	MaxFieldBytes  = 256 // requested_by and campaign, in bytes
)

// Request is one recover request. Its JSON form (the field tags) is the
// canonical body of the wire format.
type Request struct {
	// JobID is the CodeArts Build job id: exactly 32 ASCII letters or
	// digits. Required.
	JobID string `json:"job_id"`
	// Region is the API region; "" means the worker's default.
	Region string `json:"region,omitempty"`
	// Reason is free text, at most 256 characters.
	Reason string `json:"reason,omitempty"`
	// RequestedBy names the producer, at most 256 bytes.
	RequestedBy string `json:"requested_by,omitempty"`
	// RequestedAt is when the producer asked; zero is left out.
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// Campaign names a bulk run, at most 256 bytes.
	Campaign string `json:"campaign,omitempty"`
}

// Message is what is published for one request.
type Message struct {
	// JobID is the request's job id, for its span and result; "" when not
	// known (a raw message).
	JobID string
	// MsgID is sent as Nats-Msg-Id; "" sends none (and a Batch then never
	// sends the message twice).
	MsgID string
	// Header holds further headers; the trace context is added when the
	// message is published.
	Header nats.Header
	// Data is the body.
	Data []byte
}

// EncodeOptions say how a Request becomes a Message. The zero value is
// the worker's defaults, with regions unchecked.
type EncodeOptions struct {
	// MaxBytes is the largest body, as the worker's --max-body-bytes.
	// Default (0) DefaultMaxBytes.
	MaxBytes int
	// Regions are the regions the worker accepts (its --region and
	// --regions): a request naming another is refused. nil does not check
	// (a worker that does not serve the region dead-letters the request as
	// invalid_request).
	Regions []string
	// MsgID derives the Nats-Msg-Id; nil means the job id (what `worker
	// enqueue` sends). An id "" sends none; an error refuses the request.
	MsgID func(Request) (string, error)
}

// InvalidError says why a request cannot be enqueued: the worker would
// dead-letter it as invalid_request. Nothing was sent.
type InvalidError struct {
	// JobID is the request's job id, as given.
	JobID string
	// Msg says what is wrong, naming the field.
	Msg string
	// Err is the cause, when the check was not Encode's own (MsgID).
	Err error
}

func (e *InvalidError) Error() string { return "invalid request: " + e.Msg }

// Unwrap returns the cause.
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(r *Request, format string, a ...any) *InvalidError {
	return &InvalidError{JobID: r.JobID, Msg: fmt.Sprintf(format, a...)}
}

// Encode checks r as the worker's decoder will and returns its message:
// the canonical JSON body and the Nats-Msg-Id. The error is an
// *InvalidError.
func Encode(r Request, opts EncodeOptions) (Message, error) {
	if err := r.validate(opts.Regions); err != nil {
		return Message{}, err
	}
	body, err := json.Marshal(r)
	if err != nil { // a time outside years 0-9999
		return Message{}, &InvalidError{JobID: r.JobID, Msg: clip(err.Error()), Err: err}
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if len(body) > maxBytes {
		return Message{}, invalid(&r, "body of %d bytes is over the %d byte limit", len(body), maxBytes)
	}
	id := r.JobID
	if opts.MsgID != nil {
		if id, err = opts.MsgID(r); err != nil {
			return Message{}, &InvalidError{JobID: r.JobID, Msg: err.Error(), Err: err}
		}
		if strings.ContainsAny(id, "\r\n") {
			return Message{}, invalid(&r, "message id %q has a line break", clip(id))
		}
	}
	return Message{JobID: r.JobID, MsgID: id, Data: body}, nil
}

func (r *Request) validate(regions []string) error {
	switch {
	case !jobid.Valid(r.JobID):
		return invalid(r, "job_id %q is not 32 ASCII letters or digits", clip(r.JobID))
	case r.Region != "" && regions != nil && !slices.Contains(regions, r.Region):
		return invalid(r, "region %q is not in the allowed set", clip(r.Region))
	case !utf8.ValidString(r.Region) || !utf8.ValidString(r.Reason) || !utf8.ValidString(r.RequestedBy) || !utf8.ValidString(r.Campaign):
		// The worker would read U+FFFD in their place: not what was given.
		return invalid(r, "a text field is not valid UTF-8")
	case utf8.RuneCountInString(r.Reason) > MaxReasonChars:
		return invalid(r, "reason is over %d characters", MaxReasonChars)
	case len(r.RequestedBy) > MaxFieldBytes:
		return invalid(r, "requested_by is over %d bytes", MaxFieldBytes)
	case len(r.Campaign) > MaxFieldBytes:
		return invalid(r, "campaign is over %d bytes", MaxFieldBytes)
	}
	return nil
}

// clip shortens text quoted in an error, keeping it valid UTF-8.
func clip(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:maxLen], "\uFFFD") + "…"
}

// ErrNotSent is the error of an EnqueueMany request that was not sent
// because the batch stopped first (its context ended, or a publish could
// not be sent).
var ErrNotSent = errors.New("not sent: the batch stopped first")
