package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
)

// Request is one recover request, decoded from any of the accepted wire
// forms (JSON object, bare job id, CloudEvents structured or binary mode).
type Request struct {
	// JobID is the CodeArts Build job id: exactly 32 ASCII letters/digits.
	JobID string `json:"job_id"`
	// Region names the API region; "" means the worker's default.
	Region string `json:"region,omitempty"`
	// Reason is free text from the producer, at most 256 characters.
	Reason string `json:"reason,omitempty"`
	// RequestedBy identifies the producer.
	RequestedBy string `json:"requested_by,omitempty"`
	// RequestedAt is when the producer asked; zero when not given.
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// Campaign names the bulk run the request belongs to, at most 256
	// bytes; "" belongs to none. Results and dead letters repeat it.
	Campaign string `json:"campaign,omitempty"`
}

// InvalidError says why a message is not a recover request. Such a message
// is poison: it is dead-lettered with reason invalid_request and never sent
// to the API.
type InvalidError struct {
	Msg string
}

func (e *InvalidError) Error() string { return "invalid request: " + e.Msg }

func invalid(format string, a ...any) *InvalidError {
	return &InvalidError{Msg: fmt.Sprintf(format, a...)}
}

// DecodeOptions bound what Decode accepts.
type DecodeOptions struct {
	// MaxBytes is the largest accepted body. Default 64 KiB.
	MaxBytes int
	// ValidRegion reports whether a request may name region. nil accepts
	// only requests without a region.
	ValidRegion func(region string) bool
}

const (
	maxReasonLen  = 256
	maxFieldLen   = 256
	defaultMaxLen = 64 << 10
)

// Decode parses a message body and its NATS headers into a Request, or
// returns an *InvalidError saying why it cannot be one.
func Decode(body []byte, header map[string][]string, opts DecodeOptions) (Request, error) {
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = defaultMaxLen
	}
	if len(body) > maxBytes {
		return Request{}, invalid("body of %d bytes is over the %d byte limit", len(body), maxBytes)
	}
	var (
		req Request
		err error
	)
	if v, ok := headerValue(header, "ce-specversion"); ok {
		// CloudEvents binary mode: attributes in ce-* headers, data in the body.
		if v != "1.0" {
			return Request{}, invalid("unsupported CloudEvents specversion %q", clip(v))
		}
		req, err = decodeData(body)
	} else {
		req, err = decodeBody(body)
	}
	if err != nil {
		return Request{}, err
	}
	return req, req.validate(opts.ValidRegion)
}

func decodeBody(body []byte) (Request, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Request{}, invalid("empty body")
	}
	if trimmed[0] != '{' {
		return decodeData(body)
	}
	// The envelope's own fields only: a CloudEvents extension may share a
	// request field's name (region, reason) with another type.
	var probe struct {
		SpecVersion *string         `json:"specversion"`
		Data        json.RawMessage `json:"data"`
		DataBase64  *string         `json:"data_base64"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return Request{}, invalid("body is not a valid request object: %s", clip(err.Error()))
		}
		return Request{}, invalid("body is not valid JSON: %s", clip(err.Error()))
	}
	if probe.SpecVersion == nil {
		return decodeJSON(trimmed)
	}
	// CloudEvents structured mode.
	if *probe.SpecVersion != "1.0" {
		return Request{}, invalid("unsupported CloudEvents specversion %q", clip(*probe.SpecVersion))
	}
	if probe.DataBase64 != nil {
		return Request{}, invalid("CloudEvents data_base64 is not supported; send data as a JSON object")
	}
	data := bytes.TrimSpace(probe.Data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return Request{}, invalid("CloudEvents event has no data")
	}
	if data[0] == '"' {
		// data as a JSON string holding the bare id.
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return Request{}, invalid("CloudEvents data is not valid JSON")
		}
		return Request{JobID: s}, nil
	}
	if data[0] != '{' {
		return Request{}, invalid("CloudEvents data must be a JSON object")
	}
	return decodeJSON(data)
}

// decodeData parses a body that is either a JSON object or a bare job id.
func decodeData(body []byte) (Request, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Request{}, invalid("empty body")
	}
	if trimmed[0] == '{' {
		return decodeJSON(trimmed)
	}
	return Request{JobID: string(trimmed)}, nil
}

// wireRequest is the JSON object form of a request.
type wireRequest struct {
	JobID       *string `json:"job_id"`
	Region      string  `json:"region"`
	Reason      string  `json:"reason"`
	RequestedBy string  `json:"requested_by"`
	RequestedAt string  `json:"requested_at"`
	Campaign    string  `json:"campaign"`
}

func decodeJSON(obj []byte) (Request, error) {
	var w wireRequest
	if err := json.Unmarshal(obj, &w); err != nil {
		return Request{}, invalid("body is not a valid request object: %s", clip(err.Error()))
	}
	return w.request()
}

func (w wireRequest) request() (Request, error) {
	if w.JobID == nil {
		return Request{}, invalid("job_id is missing")
	}
	req := Request{JobID: *w.JobID, Region: w.Region, Reason: w.Reason, RequestedBy: w.RequestedBy, Campaign: w.Campaign}
	if w.RequestedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, w.RequestedAt)
		if err != nil {
			return Request{}, invalid("requested_at %q is not RFC 3339", clip(w.RequestedAt))
		}
		req.RequestedAt = t
	}
	return req, nil
}

func (r Request) validate(validRegion func(string) bool) error {
	if !ValidJobID(r.JobID) {
		return invalid("job_id %q is not 32 ASCII letters or digits", clip(r.JobID))
	}
	if r.Region != "" && (validRegion == nil || !validRegion(r.Region)) {
		return invalid("region %q is not in the allowed set", clip(r.Region))
	}
	if utf8.RuneCountInString(r.Reason) > maxReasonLen {
		return invalid("reason is over %d characters", maxReasonLen)
	}
	if len(r.RequestedBy) > maxFieldLen {
		return invalid("requested_by is over %d bytes", maxFieldLen)
	}
	if len(r.Campaign) > maxFieldLen {
		return invalid("campaign is over %d bytes", maxFieldLen)
	}
	return nil
}

// ValidJobID reports whether id is exactly 32 ASCII letters or digits, the
// only form the API's job_id path parameter takes.
func ValidJobID(id string) bool { return jobid.Valid(id) }

// headerValue looks a header up case-insensitively (producers differ).
func headerValue(h map[string][]string, key string) (string, bool) {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// clip shortens untrusted text quoted in an error, keeping it valid UTF-8.
func clip(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:maxLen], "\uFFFD") + "…"
}
