package worker

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	SpanID string `json:"span_id,omitempty"`
	// Campaign is the request's campaign; absent when it has none (or the
	// message was not a request).
	Campaign string   `json:"campaign,omitempty"`
	Original Original `json:"original"`
}

// Original is the request message as it was received, so it can be
// replayed byte for byte, or, when it is too large to keep whole (Truncated),
// identified by its size, SHA-256 and first characters.
type Original struct {
	Subject   string `json:"subject"`
	StreamSeq uint64 `json:"stream_seq"`
	// Headers are the allow-listed ones (trace context, CloudEvents,
	// content type, message id) that fit the record's bounds; others are
	// never recorded.
	Headers map[string][]string `json:"headers,omitempty"`
	// HeadersDropped counts allow-listed header values left out because
	// they did not fit.
	HeadersDropped int `json:"headers_dropped,omitempty"`
	// Body is the payload when it is valid UTF-8 and its JSON escapes keep
	// it within the bound; otherwise BodyBase64 holds it, if that fits.
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"body_base64,omitempty"`
	// Truncated says the body is not kept: only its size, SHA-256 (hex)
	// and a prefix (text, invalid UTF-8 shown as U+FFFD) are. Such a
	// record cannot be replayed.
	Truncated  bool   `json:"truncated,omitempty"`
	BodySize   int    `json:"body_size,omitempty"`
	BodySHA256 string `json:"body_sha256,omitempty"`
	BodyPrefix string `json:"body_prefix,omitempty"`
}

// Bounds of a dead-letter record, measured on its JSON encoding (escapes
// and base64 counted), so that a record always fits under the server's
// max_payload (1 MiB by default) and any sane MaxMsgSize, whatever the
// request was: a body of 200 KiB of "<" is 1.2 MB once escaped, and 850 KB
// of binary is 1.13 MB in base64.
const (
	// MaxDeadLetterSize is the most a marshalled DeadLetter takes.
	MaxDeadLetterSize = 32 << 10
	// MaxResultSize is the most a marshalled Result takes.
	MaxResultSize = 4 << 10

	// maxBodyLen bounds the kept body (Body or BodyBase64, encoded): a
	// request is a few hundred bytes, so only poison is ever cut.
	maxBodyLen = 16 << 10
	// maxPrefixLen bounds BodyPrefix (encoded): enough to recognise what
	// was sent.
	maxPrefixLen = 512
	// Headers: at most maxHeaderValues values, maxHeadersLen for the whole
	// map, maxHeaderValueLen for one value and maxHeaderKeyLen for a name.
	maxHeaderValues   = 32
	maxHeadersLen     = 8 << 10
	maxHeaderValueLen = 1 << 10
	maxHeaderKeyLen   = 128
	// maxTextLen bounds ErrorMsg (the client already cuts it to 512 bytes,
	// which can escape to 3 KiB).
	maxTextLen = 1 << 10
	// maxIDLen bounds every other string: ids, codes, names, the subject.
	maxIDLen = 256
)

// ErrBodyTruncated is returned by Original.Bytes for a body that was not
// kept whole.
var ErrBodyTruncated = errors.New("original body truncated")

// NewOriginal captures a message for a dead letter: the body verbatim when
// it fits the record's bound (as text, or as base64 when it is not UTF-8 or
// its escapes would not fit), else its size, SHA-256 and a prefix, marked
// Truncated; and the allow-listed headers that fit.
func NewOriginal(subject string, seq uint64, headers map[string][]string, body []byte) Original {
	o := Original{Subject: clipJSON(subject, maxIDLen, "…"), StreamSeq: seq}
	o.Headers, o.HeadersDropped = keptHeaders(headers, true)
	o.setBody(body)
	return o
}

// setBody keeps body verbatim if it fits, else its size, hash and prefix.
func (o *Original) setBody(body []byte) {
	o.Body, o.BodyBase64, o.Truncated, o.BodySize, o.BodySHA256, o.BodyPrefix = "", "", false, 0, "", ""
	if len(body) <= maxBodyLen { // encoded is never shorter than raw
		if s := string(body); utf8.ValidString(s) && jsonLen(s) <= maxBodyLen {
			o.Body = s
			return
		}
		if base64.StdEncoding.EncodedLen(len(body)) <= maxBodyLen {
			o.BodyBase64 = base64.StdEncoding.EncodeToString(body)
			return
		}
	}
	sum := sha256.Sum256(body)
	o.Truncated = true
	o.BodySize = len(body)
	o.BodySHA256 = hex.EncodeToString(sum[:])
	// A rune takes at least as many encoded bytes as it has raw ones.
	o.BodyPrefix = clipJSON(string(body[:min(len(body), maxPrefixLen+utf8.UTFMax)]), maxPrefixLen, "")
}

// Replayable reports whether the original body is kept whole, so that a
// replay republishes the request itself.
func (o Original) Replayable() bool { return !o.Truncated }

// Bytes returns the original body; for a truncated one an error wrapping
// ErrBodyTruncated with its size and SHA-256.
func (o Original) Bytes() ([]byte, error) {
	if o.Truncated {
		return nil, fmt.Errorf("%w (%d bytes, sha256 %s)", ErrBodyTruncated, o.BodySize, o.BodySHA256)
	}
	if o.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(o.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("original body_base64: %w", err)
		}
		return b, nil
	}
	return []byte(o.Body), nil
}

// bounded is o within the record's bounds. NewOriginal's output is
// returned as it is; a hand-built Original is cut down.
func (o Original) bounded() Original {
	o.Subject = clipJSON(o.Subject, maxIDLen, "…")
	o.BodySHA256 = clipJSON(o.BodySHA256, maxIDLen, "")
	o.BodyPrefix = clipJSON(o.BodyPrefix, maxPrefixLen, "")
	if !headersFit(o.Headers) {
		var dropped int
		o.Headers, dropped = keptHeaders(o.Headers, false)
		o.HeadersDropped += dropped
	}
	if len(o.Body)+len(o.BodyBase64) > maxBodyLen || jsonLen(o.Body)+len(o.BodyBase64) > maxBodyLen {
		body, err := o.Bytes()
		if err != nil {
			body = []byte(o.Body)
		}
		o.setBody(body)
	}
	return o
}

// minimal is o without its body and headers: what is left when the server
// refuses even the bounded record.
func (o Original) minimal() Original {
	if !o.Truncated {
		body, err := o.Bytes()
		if err != nil {
			body = []byte(o.Body)
		}
		sum := sha256.Sum256(body)
		o.Truncated, o.BodySize, o.BodySHA256 = true, len(body), hex.EncodeToString(sum[:])
	}
	for _, v := range o.Headers {
		o.HeadersDropped += len(v)
	}
	o.Headers, o.Body, o.BodyBase64, o.BodyPrefix = nil, "", "", ""
	return o
}

// Minimal is the record without the original message's body and headers
// (their size and SHA-256 stay), for a server that refuses the full record
// as too large. It is not replayable.
func (d *DeadLetter) Minimal() DeadLetter {
	m := *d
	m.Original = d.Original.minimal()
	return m
}

// Marshal encodes the record as JSON, within MaxDeadLetterSize: every
// string is cut to its bound first.
func (d *DeadLetter) Marshal() ([]byte, error) {
	b := *d
	clipIDs(&b.JobID, &b.Reason, &b.ErrorCode, &b.RequestID, &b.Worker, &b.TraceID, &b.SpanID, &b.Campaign)
	b.ErrorMsg = clipJSON(b.ErrorMsg, maxTextLen, "…")
	b.Original = b.Original.bounded()
	return json.Marshal(&b)
}

// headerAllowed reports whether a request header is kept in a dead letter:
// trace context, CloudEvents attributes (binary mode), content type and
// message id. Others, a credential a producer sent among them, are not.
func headerAllowed(k string) bool {
	return strings.EqualFold(k, "traceparent") || strings.EqualFold(k, "tracestate") ||
		strings.EqualFold(k, "content-type") || strings.EqualFold(k, "Nats-Msg-Id") ||
		(len(k) > 3 && strings.EqualFold(k[:3], "ce-"))
}

// refusedHeaders counts the values of h whose names are not allow-listed:
// what a dead letter of the message leaves out.
func refusedHeaders(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		if !headerAllowed(k) {
			n += len(vs)
		}
	}
	return n
}

// Encoded sizes of a header map's punctuation: `"":[],` around a name,
// `"",` around a value.
const (
	headerKeyOverhead   = 6
	headerValueOverhead = 3
)

// keptHeaders is the part of h a dead letter keeps (only allow-listed
// names when allowList), in name order so the same message always gives
// the same record, and the number of values that did not fit.
func keptHeaders(h map[string][]string, allowList bool) (map[string][]string, int) {
	if len(h) == 0 {
		return nil, 0
	}
	if (!allowList || allAllowed(h)) && headersFit(h) {
		return h, 0 // the common case: shared, never modified
	}
	var out map[string][]string
	dropped, values, size := 0, 0, 2
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if allowList && !headerAllowed(k) {
			continue
		}
		vs := h[k]
		kl := jsonLen(k) + headerKeyOverhead
		if kl > maxHeaderKeyLen {
			dropped += len(vs)
			continue
		}
		var kept []string
		for _, v := range vs {
			vl := jsonLen(v) + headerValueOverhead
			extra := vl
			if kept == nil {
				extra += kl
			}
			if values >= maxHeaderValues || vl > maxHeaderValueLen || size+extra > maxHeadersLen {
				dropped++
				continue
			}
			kept = append(kept, v)
			values++
			size += extra
		}
		if kept != nil {
			if out == nil {
				out = make(map[string][]string, len(h))
			}
			out[k] = kept
		}
	}
	return out, dropped
}

// allAllowed reports whether every name in h is allow-listed.
func allAllowed(h map[string][]string) bool {
	for k := range h {
		if !headerAllowed(k) {
			return false
		}
	}
	return true
}

// headersFit reports whether h is within the header bounds as it is.
func headersFit(h map[string][]string) bool {
	values, size := 0, 2
	for k, vs := range h {
		kl := jsonLen(k) + headerKeyOverhead
		if kl > maxHeaderKeyLen {
			return false
		}
		size += kl
		for _, v := range vs {
			vl := jsonLen(v) + headerValueOverhead
			if vl > maxHeaderValueLen {
				return false
			}
			size += vl
			values++
		}
	}
	return values <= maxHeaderValues && size <= maxHeadersLen
}

// asciiJSONLen is how many bytes encoding/json writes for an ASCII byte
// inside a string: HTML-safe escapes for <, > and &, an escape for " and \,
// and at most six for a control byte.
var asciiJSONLen = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case c < 0x20, c == '<', c == '>', c == '&':
			t[c] = 6
		case c == '"', c == '\\':
			t[c] = 2
		default:
			t[c] = 1
		}
	}
	return t
}()

// runeJSONLen is how many bytes encoding/json writes for the rune r of
// size bytes in a string: U+2028, U+2029 and an invalid byte (\ufffd) are
// six.
func runeJSONLen(r rune, size int) int {
	if size == 1 && r < utf8.RuneSelf {
		return int(asciiJSONLen[r])
	}
	if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
		return 6
	}
	return size
}

// jsonLen is an upper bound of the bytes encoding/json writes for s
// inside its quotes (exact but for control bytes, counted at six).
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			n += int(asciiJSONLen[c])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeJSONLen(r, size)
		i += size
	}
	return n
}

// clipJSON returns s as valid UTF-8 (an invalid byte becomes U+FFFD) whose
// JSON encoding takes at most limit bytes; a longer s is cut at a rune and
// ends with mark.
func clipJSON(s string, limit int, mark string) string {
	if len(s)*6 <= limit && utf8.ValidString(s) {
		return s
	}
	fixed := 0 // encoded length once invalid bytes are U+FFFD
	for i := 0; i < len(s) && fixed <= limit; {
		r, size := utf8.DecodeRuneInString(s[i:])
		fixed += fixedLen(r, size)
		i += size
	}
	if fixed <= limit {
		if utf8.ValidString(s) {
			return s
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	room := limit - jsonLen(mark)
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		w := fixedLen(r, size)
		if n+w > room {
			break
		}
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		n += w
		i += size
	}
	b.WriteString(mark)
	return b.String()
}

// fixedLen is runeJSONLen once an invalid byte is replaced by U+FFFD
// (written as is: three bytes).
func fixedLen(r rune, size int) int {
	if r == utf8.RuneError && size == 1 {
		return 3
	}
	return runeJSONLen(r, size)
}

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
	// Campaign is the request's campaign; absent when it has none.
	Campaign string `json:"campaign,omitempty"`
	// Verified reports a recovered job read back enabled (Config.Verify).
	Verified bool `json:"verified,omitempty"`
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

// Marshal encodes the event as JSON, within MaxResultSize: every string is
// cut to its bound first.
func (r *Result) Marshal() ([]byte, error) {
	b := *r
	clipIDs(&b.JobID, &b.Outcome, &b.Reason, &b.ErrorCode, &b.RequestID, &b.Worker, &b.TraceID, &b.SpanID, &b.Campaign)
	return json.Marshal(&b)
}

// clipIDs cuts each id-like field of a record to maxIDLen encoded bytes.
func clipIDs(fields ...*string) {
	for _, f := range fields {
		*f = clipJSON(*f, maxIDLen, "…")
	}
}

// tooLarge reports whether a publish error says the message is over the
// server's max_payload (nats.ErrMaxPayload, from the client's own check) or
// the stream's MaxMsgSize (JetStream error 10054). The worker imports no
// NATS package, so it reads their text.
func tooLarge(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "maximum payload exceeded") || strings.Contains(msg, "err_code=10054") ||
		strings.Contains(msg, "message size exceeds maximum allowed")
}
