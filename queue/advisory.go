package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// advisorySubject is where the server announces a message of stream that
// reached the consumer's MaxDeliver without an ack.
func (c Config) advisorySubject() string {
	c = c.WithDefaults()
	return fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", c.Stream, c.Consumer)
}

// AdvisoryStream is the small stream that captures the MAX_DELIVERIES
// advisories of the worker's consumer, so none is missed while no worker
// runs.
func (c Config) AdvisoryStream() string { return c.WithDefaults().Stream + "_MAXDELIVER" }

func (c Config) advisoryStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.AdvisoryStream(),
		Description: "MAX_DELIVERIES advisories of the recover worker's consumer",
		Subjects:    []string{c.advisorySubject()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.DLQMaxAge,
		MaxMsgSize:  recordMaxMsgSize,
	}
}

// Stranded is a request that reached MaxDeliver without a terminal state
// (e.g. it crashed the worker on every delivery).
type Stranded struct {
	StoredMsg
	Deliveries uint64
	// Gone: the request is no longer in the stream (an earlier sweep
	// dead-lettered and deleted it but was interrupted before Done).
	Gone bool

	c   *Conn
	adv jetstream.Msg
}

// Delete removes the request from the request stream (after it was
// dead-lettered).
func (s *Stranded) Delete(ctx context.Context) error {
	st, err := s.c.JS.Stream(ctx, s.c.cfg.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.c.cfg.Stream, err)
	}
	if err := st.DeleteMsg(ctx, s.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete %d from %s: %w", s.Seq, s.c.cfg.Stream, err)
	}
	return nil
}

// Done acknowledges the advisory.
func (s *Stranded) Done(ctx context.Context) error { return s.adv.DoubleAck(ctx) }

// Retry hands the advisory back to be tried again after delay.
func (s *Stranded) Retry(delay time.Duration) error { return s.adv.NakWithDelay(delay) }

// Advisories reads MAX_DELIVERIES advisories through a durable consumer on
// the advisory stream; every replica may run one (work-queue: each advisory
// goes to one of them).
type Advisories struct {
	c    *Conn
	cons jetstream.Consumer
}

// Advisories creates (unless NoCreate) the advisory stream and its consumer
// and binds them. An existing advisory stream keeps its settings, as in
// Ensure.
func (c *Conn) Advisories(ctx context.Context) (*Advisories, error) {
	sc := c.onServer(c.cfg.advisoryStreamConfig())
	name := c.cfg.Consumer + "-maxdeliver"
	if !c.cfg.NoCreate {
		if err := c.ensureStream(ctx, sc); err != nil {
			return nil, err
		}
		if _, err := c.JS.CreateOrUpdateConsumer(ctx, sc.Name, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		}); err != nil {
			return nil, fmt.Errorf("create consumer %s on %s: %w", name, sc.Name, err)
		}
	}
	cons, err := c.JS.Consumer(ctx, sc.Name, name)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s on %s: %w", name, sc.Name, err)
	}
	return &Advisories{c: c, cons: cons}, nil
}

// Next waits for the next advisory and returns the stranded request it
// names (Gone when it was already handled). Next returns ctx's error when ctx ends.
func (a *Advisories) Next(ctx context.Context) (*Stranded, error) {
	for {
		fctx, cancel := context.WithTimeout(ctx, a.c.cfg.FetchWait)
		mb, err := a.cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("fetch advisory: %w", err)
		}
		var adv jetstream.Msg
		for m := range mb.Messages() {
			adv = m
		}
		cancel()
		if err := ctx.Err(); err != nil {
			if adv != nil {
				_ = adv.Nak()
			}
			return nil, err
		}
		if adv == nil {
			if err := mb.Error(); err != nil && !benign(err) {
				return nil, fmt.Errorf("fetch advisory: %w", err)
			}
			continue
		}
		var ev struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		if err := json.Unmarshal(adv.Data(), &ev); err != nil || ev.StreamSeq == 0 {
			// Not an advisory we understand: drop it rather than loop.
			_ = adv.Term()
			continue
		}
		s := &Stranded{c: a.c, adv: adv, Deliveries: ev.Deliveries}
		s.Seq = ev.StreamSeq
		st, err := a.c.JS.Stream(ctx, a.c.cfg.Stream)
		if err != nil {
			_ = adv.NakWithDelay(time.Second)
			return nil, fmt.Errorf("stream %s: %w", a.c.cfg.Stream, err)
		}
		raw, err := st.GetMsg(ctx, ev.StreamSeq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			s.Gone = true
			return s, nil
		case err != nil:
			_ = adv.NakWithDelay(time.Second)
			return nil, fmt.Errorf("get %d from %s: %w", ev.StreamSeq, a.c.cfg.Stream, err)
		}
		s.StoredMsg = StoredMsg{Seq: raw.Sequence, Subject: raw.Subject, Header: raw.Header, Data: raw.Data, Time: raw.Time}
		return s, nil
	}
}
