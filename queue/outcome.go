package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// OutcomeBucketName is the KV bucket that holds each request's claimed
// terminal outcome: "<Stream>_OUTCOMES" (CODEARTS_RECOVER_OUTCOMES).
func (c Config) OutcomeBucketName() string { return c.WithDefaults().Stream + "_OUTCOMES" }

// OutcomeMaxAge is how long a claimed outcome is kept: as long as the
// longer of the dead letters and the result events, so a claim outlives the
// records it guards and any message of its request (a requeued copy behind
// a backlog, a redelivery after a failed ack, the max-deliveries sweep).
func (c Config) OutcomeMaxAge() time.Duration {
	c = c.WithDefaults()
	return max(c.DLQMaxAge, c.ResultMaxAge)
}

// Outcomes is the bucket of claimed outcomes, one key per request: the
// first writer wins (KV Create), and whoever comes later reads the winner's.
// It implements worker.Claims (through internal/wire).
type Outcomes struct{ kv jetstream.KeyValue }

// Outcomes binds the outcome bucket, creating it (unless NoCreate) when it
// does not exist: file storage, the streams' replicas, one value per key,
// kept OutcomeMaxAge. An existing bucket keeps its operator's settings. An
// operator provisioning for --no-create workers calls it once.
func (c *Conn) Outcomes(ctx context.Context) (*Outcomes, error) {
	bucket := c.cfg.OutcomeBucketName()
	kv, err := c.JS.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && !c.cfg.NoCreate {
		kv, err = c.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "the one terminal outcome of each recover request",
			History: 1, TTL: c.cfg.OutcomeMaxAge(), Storage: jetstream.FileStorage, Replicas: c.cfg.Replicas,
		})
	}
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = c.JS.KeyValue(ctx, bucket) // another replica created it first
	}
	if err != nil {
		return nil, fmt.Errorf("outcome bucket %s: %w", bucket, err)
	}
	return &Outcomes{kv: kv}, nil
}

// Claim stores value under key unless the key holds a value already; it
// returns the value held and whether it is this one.
func (o *Outcomes) Claim(ctx context.Context, key string, value []byte) ([]byte, bool, error) {
	_, err := o.kv.Create(ctx, key, value)
	if err == nil {
		return value, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, err
	}
	held, ok, err := o.Claimed(ctx, key)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		// Create said it exists, Get says it does not: never guess.
		return nil, false, fmt.Errorf("outcome %s: exists but cannot be read", key)
	}
	return held, false, nil
}

// Claimed returns the value held under key; ok is false when there is none.
func (o *Outcomes) Claimed(ctx context.Context, key string) ([]byte, bool, error) {
	e, err := o.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return e.Value(), true, nil
}
