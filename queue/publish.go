package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishTimeout bounds a publish whose ctx has no deadline, as
// jetstream's default API timeout (not exported) does.
const publishTimeout = 5 * time.Second

// Publish stores data on subject and waits for JetStream's ack. A non-empty
// msgID is sent as Nats-Msg-Id; duplicate reports that the stream already
// held a message with that id (the write was not repeated).
//
// It does what jetstream's PublishMsg does (request, retry while no stream
// leader answers, read the PubAck) with a PubAck reader that does not
// reflect over JSON for the common answer: every terminal request makes one
// such publish (its result event), and the reflective decode was 7 µs of the
// worker's ~150 µs of CPU per request (make bench, zero-latency profile).
func (c *Conn) Publish(ctx context.Context, subject, msgID string, header nats.Header, data []byte) (duplicate bool, err error) {
	if msgID != "" {
		if header == nil {
			header = nats.Header{jetstream.MsgIDHeader: []string{msgID}}
		} else {
			header.Set(jetstream.MsgIDHeader, msgID)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: subject, Header: header, Data: data}
	resp, err := c.NC.RequestMsgWithContext(ctx, msg)
	// No responder: a stream leader election in progress. Retry as
	// jetstream's PublishMsg does by default.
	for r := 0; errors.Is(err, nats.ErrNoResponders) && r < jetstream.DefaultPubRetryAttempts; r++ {
		t := time.NewTimer(jetstream.DefaultPubRetryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("publish to %s: %w", subject, ctx.Err())
		case <-t.C:
		}
		resp, err = c.NC.RequestMsgWithContext(ctx, msg)
	}
	if errors.Is(err, nats.ErrNoResponders) {
		return false, fmt.Errorf("publish to %s: %w", subject, jetstream.ErrNoStreamResponse)
	}
	if err != nil {
		return false, fmt.Errorf("publish to %s: %w", subject, err)
	}
	duplicate, err = parsePubAck(resp.Data)
	if err != nil {
		return false, fmt.Errorf("publish to %s: %w", subject, err)
	}
	return duplicate, nil
}

// The server writes a fresh store as {"stream":"NAME","seq":N} (with
// "domain" when it has one); a duplicate or a refusal carries a
// "duplicate" or "error" key and takes the full decode. A stream or domain
// name cannot contain a quote, so no name can fake these patterns.
var (
	pubAckPrefix    = []byte(`{"stream":"`)
	pubAckSeq       = []byte(`,"seq":`)
	pubAckDuplicate = []byte(`"duplicate"`)
	pubAckError     = []byte(`"error"`)
)

// parsePubAck reads a JetStream publish answer: nil for a stored (or
// duplicate) message, the server's *jetstream.APIError for a refusal, and
// jetstream.ErrInvalidJSAck for anything else.
func parsePubAck(data []byte) (duplicate bool, err error) {
	if bytes.HasPrefix(data, pubAckPrefix) && bytes.Contains(data, pubAckSeq) &&
		!bytes.Contains(data, pubAckError) && !bytes.Contains(data, pubAckDuplicate) {
		return false, nil
	}
	var ack struct {
		Error     *jetstream.APIError `json:"error,omitempty"`
		Stream    string              `json:"stream"`
		Duplicate bool                `json:"duplicate,omitempty"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return false, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return false, fmt.Errorf("nats: %w", ack.Error)
	}
	if ack.Stream == "" {
		return false, jetstream.ErrInvalidJSAck
	}
	return ack.Duplicate, nil
}

// Result stores a result event and returns once JetStream acknowledged it;
// msgID is derived from the request's stream sequence, like a dead letter's.
// With result events off it does nothing.
func (c *Conn) Result(ctx context.Context, msgID string, record []byte) error {
	if !c.cfg.Results() {
		return nil
	}
	_, err := c.Publish(ctx, c.cfg.ResultSubject, msgID, nil, record)
	return err
}

// DeadLetter stores a dead-letter record on the dead-letter subject and
// returns once JetStream acknowledged it. msgID must be derived from the
// request's stream sequence so a repeat after a crash is dropped as a
// duplicate.
func (c *Conn) DeadLetter(ctx context.Context, msgID string, record []byte) error {
	_, err := c.Publish(ctx, c.cfg.DLQSubject, msgID, nil, record)
	return err
}
