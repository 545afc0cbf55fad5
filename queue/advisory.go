package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
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
		var ev maxDeliverAdvisory
		if err := json.Unmarshal(adv.Data(), &ev); err != nil || ev.StreamSeq == 0 {
			// Not an advisory we understand: drop it rather than loop.
			_ = adv.Term()
			continue
		}
		if why, err := a.verify(ctx, ev); err != nil {
			_ = adv.NakWithDelay(time.Second)
			return nil, err
		} else if why != "" {
			// Anyone allowed to publish on the advisory subject could name a
			// pending request; only what the server's own state confirms is
			// dead-lettered and deleted.
			a.c.log.Warn("ignoring a MAX_DELIVERIES advisory the consumer's state does not confirm",
				zap.Uint64("stream_seq", ev.StreamSeq), zap.String("why", why))
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

// maxDeliverAdvisory is the part of the server's MAX_DELIVERIES advisory the
// sweep reads.
type maxDeliverAdvisory struct {
	Type       string `json:"type"`
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

const maxDeliverType = "io.nats.jetstream.advisory.v1.max_deliver"

// verify checks an advisory against the server's state of the consumer: the
// right type, stream and consumer, a delivery count at the consumer's
// MaxDeliver, and a message the consumer has delivered and no longer has
// pending. It returns why an advisory is not confirmed ("" when it is).
func (a *Advisories) verify(ctx context.Context, ev maxDeliverAdvisory) (string, error) {
	switch {
	case ev.Type != maxDeliverType:
		return fmt.Sprintf("type %q", ev.Type), nil
	case ev.Stream != a.c.cfg.Stream || ev.Consumer != a.c.cfg.Consumer:
		return fmt.Sprintf("names %s/%s", ev.Stream, ev.Consumer), nil
	}
	cons, err := a.c.JS.Consumer(ctx, a.c.cfg.Stream, a.c.cfg.Consumer)
	if err != nil {
		return "", fmt.Errorf("consumer %s: %w", a.c.cfg.Consumer, err)
	}
	info := cons.CachedInfo()
	switch {
	case info.Config.MaxDeliver > 0 && ev.Deliveries < uint64(info.Config.MaxDeliver):
		return fmt.Sprintf("%d deliveries, under the consumer's MaxDeliver %d", ev.Deliveries, info.Config.MaxDeliver), nil
	case ev.StreamSeq > info.Delivered.Stream:
		return fmt.Sprintf("the consumer has not delivered it (delivered up to %d)", info.Delivered.Stream), nil
	}
	// Left open: a forged advisory naming a message a worker holds now.
	// Nothing in the consumer's state says which messages gave up (the ack
	// floor stays below them), so publishing on the advisory subject must
	// stay as privileged as the worker itself (e2e/README.md).
	return "", nil
}
