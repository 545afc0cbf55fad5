package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors the operator tools tell apart. They match with errors.Is.
var (
	// ErrStreamNotFound: the named stream does not exist.
	ErrStreamNotFound = jetstream.ErrStreamNotFound
	// ErrConsumerNotFound: the named consumer does not exist.
	ErrConsumerNotFound = jetstream.ErrConsumerNotFound
	// ErrMsgNotFound: no message is stored at that sequence (never was, or
	// deleted, or expired).
	ErrMsgNotFound = jetstream.ErrMsgNotFound
)

// Stream is a handle on one stream, for reading and removing its messages
// by sequence. It is safe for concurrent use.
type Stream struct {
	s    jetstream.Stream
	name string
}

// Stream looks a stream up; the error wraps ErrStreamNotFound when it does
// not exist.
func (c *Conn) Stream(ctx context.Context, name string) (*Stream, error) {
	s, err := c.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return &Stream{s: s, name: name}, nil
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.name }

// Info returns the stream's current configuration and state.
func (s *Stream) Info(ctx context.Context) (*jetstream.StreamInfo, error) {
	info, err := s.s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.name, err)
	}
	return info, nil
}

// GetMsg returns the message stored at seq, or an error wrapping
// ErrMsgNotFound.
func (s *Stream) GetMsg(ctx context.Context, seq uint64) (StoredMsg, error) {
	m, err := s.s.GetMsg(ctx, seq)
	if err != nil {
		return StoredMsg{}, fmt.Errorf("get %s message %d: %w", s.name, seq, err)
	}
	return StoredMsg{Seq: m.Sequence, Subject: m.Subject, Header: m.Header, Data: m.Data, Time: m.Time}, nil
}

// DeleteMsg removes the message at seq. When nothing is stored there
// (already deleted, e.g. by a concurrent run) the error wraps
// ErrMsgNotFound, so a caller can treat "gone" as done.
func (s *Stream) DeleteMsg(ctx context.Context, seq uint64) error {
	if err := s.s.DeleteMsg(ctx, seq); err != nil {
		// The server's answer for a missing sequence is a generic "delete
		// unsuccessful"; ask whether the message is there to tell them apart.
		if _, gerr := s.s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("delete %s message %d: %w", s.name, seq, ErrMsgNotFound)
		}
		return fmt.Errorf("delete %s message %d: %w", s.name, seq, err)
	}
	return nil
}

// Purge removes the messages stored below sequence before (0: all of
// them). Bounding it by the last sequence a caller counted keeps messages
// that arrive meanwhile.
func (s *Stream) Purge(ctx context.Context, before uint64) error {
	var opts []jetstream.StreamPurgeOpt
	if before > 0 {
		opts = append(opts, jetstream.WithPurgeSequence(before))
	}
	if err := s.s.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge %s: %w", s.name, err)
	}
	return nil
}

// ConsumerInfo returns the figures of a durable consumer, or an error
// wrapping ErrConsumerNotFound (or ErrStreamNotFound).
func (c *Conn) ConsumerInfo(ctx context.Context, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	cons, err := c.JS.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", consumer, stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", consumer, stream, err)
	}
	return info, nil
}
