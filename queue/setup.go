package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// dlqDuplicateWindow is the dead-letter stream's Nats-Msg-Id window. A dead
// letter's id is derived from the request's stream sequence, so a worker
// that crashed after dead-lettering but before acking publishes the same
// id again on redelivery; an hour covers any AckWait and restart.
const dlqDuplicateWindow = time.Hour

// RequestStreamConfig is the request stream the worker creates: work-queue
// retention (a message leaves when acked), file storage, and Discard new so a
// full stream refuses new requests instead of silently dropping old ones.
func (c Config) RequestStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "CodeArts Build recover requests",
		Subjects:    []string{c.Subject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
	}
}

// DLQStreamConfig is the dead-letter stream: limits retention for DLQMaxAge.
func (c Config) DLQStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.DLQStream,
		Description: "CodeArts Build recover requests that failed for good",
		Subjects:    []string{c.DLQSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DLQMaxAge,
		Replicas:    c.Replicas,
		Duplicates:  min(dlqDuplicateWindow, c.DLQMaxAge),
	}
}

// ResultStreamConfig is the result-event stream: limits retention for
// ResultMaxAge, so automation and reconciliation can read outcomes back.
func (c Config) ResultStreamConfig() jetstream.StreamConfig {
	c = c.WithDefaults()
	return jetstream.StreamConfig{
		Name:        c.ResultStream,
		Description: "CodeArts Build recover results, one per finished request",
		Subjects:    []string{c.ResultSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.ResultMaxAge,
		Replicas:    c.Replicas,
		Duplicates:  min(dlqDuplicateWindow, c.ResultMaxAge),
	}
}

// ConsumerConfig is the durable pull consumer the pool fetches from.
func (c Config) ConsumerConfig() jetstream.ConsumerConfig {
	c = c.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "codearts-recover-worker pool",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		FilterSubject: c.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Pull requests larger than the pool never happen (we fetch for
		// free slots only); the cap protects against a misbehaving client.
		MaxRequestBatch: 1024,
		Replicas:        0, // inherit the stream's
	}
}

// Ensure creates the streams and the consumer, or updates them to the
// configured settings; existing compatible settings are left as they are.
// With NoCreate it only checks that they exist.
func (c *Conn) Ensure(ctx context.Context) error {
	cfg := c.cfg
	if cfg.NoCreate {
		for _, name := range []string{cfg.Stream, cfg.DLQStream} {
			if _, err := c.JS.Stream(ctx, name); err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
		}
		if _, err := c.JS.Consumer(ctx, cfg.Stream, cfg.Consumer); err != nil {
			return fmt.Errorf("consumer %s on %s: %w", cfg.Consumer, cfg.Stream, err)
		}
		return nil
	}
	streams := []jetstream.StreamConfig{cfg.RequestStreamConfig(), cfg.DLQStreamConfig()}
	if cfg.Results() {
		streams = append(streams, cfg.ResultStreamConfig())
	}
	for _, sc := range streams {
		if err := c.ensureStream(ctx, sc); err != nil {
			return err
		}
	}
	if _, err := c.JS.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.ConsumerConfig()); err != nil {
		return fmt.Errorf("create or update consumer %s on %s: %w", cfg.Consumer, cfg.Stream, err)
	}
	return nil
}

// ensureStream creates sc, or updates an existing stream to it. Settings the
// server cannot change in place (storage, retention) are kept as they are
// and reported, rather than failing a restart against an older stream.
func (c *Conn) ensureStream(ctx context.Context, sc jetstream.StreamConfig) error {
	s, err := c.JS.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := c.JS.CreateStream(ctx, sc); err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", sc.Name, err)
	}
	have := s.CachedInfo().Config
	want := have
	want.Subjects = mergeSubjects(have.Subjects, sc.Subjects)
	want.Duplicates = max(have.Duplicates, sc.Duplicates)
	if sc.MaxAge != 0 {
		want.MaxAge = sc.MaxAge
	}
	if want.Replicas != sc.Replicas && sc.Replicas > 0 {
		want.Replicas = sc.Replicas
	}
	if have.Retention != sc.Retention || have.Storage != sc.Storage {
		c.log.Warn("existing stream differs in settings that cannot be changed in place; keeping them")
	}
	if equalStreamConfig(have, want) {
		return nil
	}
	if _, err := c.JS.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("update stream %s: %w", sc.Name, err)
	}
	return nil
}

func mergeSubjects(have, want []string) []string {
	out := append([]string(nil), have...)
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			out = append(out, w)
		}
	}
	return out
}

func equalStreamConfig(a, b jetstream.StreamConfig) bool {
	if len(a.Subjects) != len(b.Subjects) {
		return false
	}
	for i := range a.Subjects {
		if a.Subjects[i] != b.Subjects[i] {
			return false
		}
	}
	return a.Duplicates == b.Duplicates && a.MaxAge == b.MaxAge && a.Replicas == b.Replicas
}
