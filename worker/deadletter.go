package worker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Dead-letter reasons, the values of DeadLetter.Reason.
const (
	ReasonClientError      = "client_error"
	ReasonInvalidRequest   = "invalid_request"
	ReasonRetriesExhausted = "retries_exhausted"
	ReasonMaxDeliveries    = "max_deliveries"
)

// DeadLetter is the record published on the dead-letter subject, one per
// request that failed for good. It never holds a credential.
type DeadLetter struct {
	JobID      string `json:"job_id,omitempty"`
	Reason     string `json:"reason"`
	StatusCode int    `json:"status_code,omitempty"`
	ErrorCode  string `json:"error_code,omitempty"`
	ErrorMsg   string `json:"error_msg,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	// Attempts counts API calls for this request, across deliveries
	// (earlier deliveries are counted at their full per-delivery budget).
	Attempts   int    `json:"attempts"`
	Deliveries uint64 `json:"deliveries"`
	// FirstAttemptAt is the first API call of the delivery that gave up;
	// absent when no call was made (invalid requests).
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	// EnqueuedAt is when the request was stored in the request stream.
	EnqueuedAt time.Time `json:"enqueued_at,omitzero"`
	FailedAt   time.Time `json:"failed_at"`
	// Worker is the host or pod that dead-lettered the request.
	Worker string `json:"worker"`
	// TraceID is the request's OpenTelemetry trace (hex): the producer's
	// traceparent, or with tracing on the one every delivery's span
	// joined. Absent when neither exists.
	TraceID string `json:"trace_id,omitempty"`
	// SpanID is the span of the delivery (or max-deliveries sweep) that
	// dead-lettered the request; absent with tracing off.
	SpanID   string   `json:"span_id,omitempty"`
	Original Original `json:"original"`
}

// Original is the request message as it was received, so it can be
// replayed byte for byte.
type Original struct {
	Subject   string              `json:"subject"`
	StreamSeq uint64              `json:"stream_seq"`
	Headers   map[string][]string `json:"headers,omitempty"`
	// Body is the payload when it is valid UTF-8; otherwise BodyBase64
	// holds it.
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"body_base64,omitempty"`
}

// NewOriginal captures a message for a dead letter.
func NewOriginal(subject string, seq uint64, headers map[string][]string, body []byte) Original {
	o := Original{Subject: subject, StreamSeq: seq, Headers: headers}
	if utf8.Valid(body) {
		o.Body = string(body)
	} else {
		o.BodyBase64 = base64.StdEncoding.EncodeToString(body)
	}
	return o
}

// Bytes returns the original body.
func (o Original) Bytes() ([]byte, error) {
	if o.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(o.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("original body_base64: %w", err)
		}
		return b, nil
	}
	return []byte(o.Body), nil
}

// Marshal encodes the record as JSON.
func (d *DeadLetter) Marshal() ([]byte, error) { return json.Marshal(d) }

// Result is the event published once per request that reached a terminal
// state (recovered or dead-lettered), for automation that chains on
// "job recovered" and for reconciliation.
type Result struct {
	JobID      string `json:"job_id,omitempty"`
	Outcome    string `json:"outcome"`          // recovered | dead_lettered
	Reason     string `json:"reason,omitempty"` // the dead-letter reason
	Status     int    `json:"status,omitempty"`
	ErrorCode  string `json:"error_code,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	Attempts   int    `json:"attempts"`
	Deliveries uint64 `json:"deliveries"`
	// DurationMS is the time this delivery took, in milliseconds.
	DurationMS int64     `json:"duration_ms"`
	StreamSeq  uint64    `json:"stream_seq"`
	At         time.Time `json:"at"`
	Worker     string    `json:"worker"`
	// TraceID and SpanID are as in DeadLetter: the request's trace and the
	// span of the delivery that finished it.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// ResultID is the Nats-Msg-Id of the result event for the request stored at
// seq at time stored, so a redelivery after a crash cannot make two.
func ResultID(seq uint64, stored time.Time) string {
	return seqID("result-", seq, stored)
}

// seqID is prefix, seq, "-", the store time in unix nanos: one per
// request, without fmt (a result id is made for every request).
func seqID(prefix string, seq uint64, stored time.Time) string {
	b := make([]byte, 0, len(prefix)+41)
	b = append(b, prefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, stored.UnixNano(), 10)
	return string(b)
}

// DeadLetterID is the Nats-Msg-Id of the dead letter for the request stored
// at seq at time stored: the same on every redelivery, so a crash between
// dead-lettering and acking cannot make two.
func DeadLetterID(seq uint64, stored time.Time) string {
	return seqID("dlq-", seq, stored)
}
