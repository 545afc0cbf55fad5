package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FleetTokens shares a request-rate quota between every replica through a
// NATS KV bucket: time is cut into short windows, each worth rate×window
// tokens, and replicas take small batches from the current window with a
// compare-and-set on one key. Tokens not spent in their window are gone
// when it ends, so a replica that dies holding some does not keep them.
// Replicas' clocks must agree to well within a window (NTP).
type FleetTokens struct {
	// one lease at a time per process: waiters queue here instead of all
	// racing the compare-and-set each window.
	sem       chan struct{}
	kv        jetstream.KeyValue
	key       string
	window    time.Duration
	perWindow int64
	now       func() time.Time
}

// FleetTokens creates (unless NoCreate) the bucket "<Stream>_RATE" and
// returns a token source for rate requests per second across the fleet.
func (c *Conn) FleetTokens(ctx context.Context, rate float64) (*FleetTokens, error) {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return nil, fmt.Errorf("rate-limit: %g is not a positive rate", rate)
	}
	bucket := c.cfg.Stream + "_RATE"
	var (
		kv  jetstream.KeyValue
		err error
	)
	if c.cfg.NoCreate {
		kv, err = c.JS.KeyValue(ctx, bucket)
	} else {
		kv, err = c.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "fleet-wide API rate quota of the recover workers",
			History: 1, TTL: time.Hour, Storage: jetstream.MemoryStorage, Replicas: c.cfg.Replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("rate bucket %s: %w", bucket, err)
	}
	// Short windows keep the fleet's bursts to a couple of calls, which an
	// API gateway's token bucket absorbs; a slow quota gets windows of one
	// token each.
	window := 20 * time.Millisecond
	if rate*window.Seconds() < 1 {
		window = time.Duration(math.Ceil(1e9 / rate))
	}
	per := int64(math.Floor(rate * window.Seconds()))
	return &FleetTokens{sem: make(chan struct{}, 1), kv: kv, key: "tokens", window: window, perWindow: max(per, 1), now: time.Now}, nil
}

// Take blocks until at least one token is available in the current window
// and returns how many it took (at most n).
func (f *FleetTokens) Take(ctx context.Context, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	select {
	case f.sem <- struct{}{}:
		defer func() { <-f.sem }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	for {
		now := f.now()
		win := now.UnixNano() / int64(f.window)
		entry, err := f.kv.Get(ctx, f.key)
		var (
			rev       uint64
			haveWin   int64
			haveTaken int64
		)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, fmt.Errorf("rate bucket: %w", err)
		default:
			rev = entry.Revision()
			haveWin, haveTaken = decodeTokens(entry.Value())
		}
		if haveWin != win {
			haveTaken = 0
		}
		free := f.perWindow - haveTaken
		if haveWin > win || free <= 0 {
			// This window is spent: wait for the next one.
			next := time.Unix(0, (max(win, haveWin)+1)*int64(f.window))
			if err := sleepUntil(ctx, next); err != nil {
				return 0, err
			}
			continue
		}
		take := min(int64(n), free)
		val := encodeTokens(win, haveTaken+take)
		if rev == 0 {
			_, err = f.kv.Create(ctx, f.key, val)
		} else {
			_, err = f.kv.Update(ctx, f.key, val, rev)
		}
		if err == nil {
			return int(take), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return 0, fmt.Errorf("rate bucket: %w", err)
		}
		// Another replica took tokens first: read again.
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func encodeTokens(win, taken int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(win))       //nolint:gosec // a window number, positive
	binary.BigEndian.PutUint64(b[8:], uint64(taken)) //nolint:gosec // a count, positive
	return b
}

func decodeTokens(b []byte) (win, taken int64) {
	if len(b) != 16 {
		return 0, 0
	}
	return int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:])) //nolint:gosec // written by encodeTokens
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
