package queue

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publish stores data on subject and waits for JetStream's ack (jetstream's
// PublishMsg: a publish that finds no stream leader is retried, and one
// whose ctx has no deadline is bounded by the API timeout). A non-empty
// msgID is sent as Nats-Msg-Id; duplicate reports that the stream already
// held a message with that id (the write was not repeated). A refusal is
// the server's *jetstream.APIError, wrapped.
func (c *Conn) Publish(ctx context.Context, subject, msgID string, header nats.Header, data []byte) (duplicate bool, err error) {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := c.JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: header, Data: data}, opts...)
	if err != nil {
		return false, fmt.Errorf("publish to %s: %w", subject, err)
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
