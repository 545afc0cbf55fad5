package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Campaign is a bulk run's record in NATS KV (bucket CampaignBucket of the
// request stream, key its name): what `worker report` compares the
// outcomes with.
type Campaign struct {
	Name string `json:"name"`
	// Size counts the requests enqueued for the campaign, over every run
	// that added to it: stored, or already in the stream (a duplicate of a
	// request enqueued before).
	Size int64 `json:"size"`
	// StartedAt is when the first run began; UpdatedAt when the last one
	// added to it.
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Runs counts the runs that added to it.
	Runs int `json:"runs"`
}

// ErrNoCampaign is returned for a campaign the bucket does not hold.
var ErrNoCampaign = errors.New("no such campaign")

// campaignName is what a campaign may be called: a KV key (letters,
// digits, - _ =, dots between), so the record is found by its name.
var campaignName = regexp.MustCompile(`^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$`)

// ValidCampaign reports why name cannot name a campaign, or nil.
func ValidCampaign(name string) error {
	switch {
	case name == "":
		return errors.New("campaign: empty name")
	case len(name) > MaxFieldBytes:
		return fmt.Errorf("campaign: over %d bytes", MaxFieldBytes)
	case !campaignName.MatchString(name):
		return fmt.Errorf("campaign %q: use letters, digits, '-', '_', '=' and dots between them", clip(name))
	}
	return nil
}

// CampaignBucket is the KV bucket holding the campaigns of a request
// stream.
func CampaignBucket(stream string) string { return stream + "_CAMPAIGNS" }

// campaignKV binds the bucket, creating it when create is set.
func campaignKV(ctx context.Context, js jetstream.JetStream, stream string, create bool) (jetstream.KeyValue, error) {
	bucket := CampaignBucket(stream)
	if create {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "campaigns of recover requests (worker report)", History: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("campaign bucket %s: %w", bucket, err)
		}
		return kv, nil
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoCampaign
	}
	if err != nil {
		return nil, fmt.Errorf("campaign bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// StartCampaign records that a run of the campaign name begins, on the
// client's stream (Config.Stream, else the worker's default): the record
// (and its bucket) is created on first use with StartedAt now, and Runs
// counts this run. Call AddToCampaign with what the run stored.
func (c *Client) StartCampaign(ctx context.Context, name string) (Campaign, error) {
	return c.updateCampaign(ctx, name, func(cp *Campaign) { cp.Runs++ })
}

// AddToCampaign adds n requests stored for the campaign name to its size.
// Concurrent runs add up (compare-and-set on the key).
func (c *Client) AddToCampaign(ctx context.Context, name string, n int64) (Campaign, error) {
	return c.updateCampaign(ctx, name, func(cp *Campaign) { cp.Size += n })
}

func (c *Client) updateCampaign(ctx context.Context, name string, change func(*Campaign)) (Campaign, error) {
	if err := ValidCampaign(name); err != nil {
		return Campaign{}, err
	}
	kv, err := campaignKV(ctx, c.js, c.stream(), true)
	if err != nil {
		return Campaign{}, err
	}
	for {
		now := time.Now().UTC()
		cur, rev, err := getCampaign(ctx, kv, name)
		switch {
		case errors.Is(err, ErrNoCampaign):
			cur = Campaign{Name: name, StartedAt: now}
		case err != nil:
			return Campaign{}, err
		}
		change(&cur)
		cur.UpdatedAt = now
		data, err := json.Marshal(cur)
		if err != nil {
			return Campaign{}, err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, name, data)
		} else {
			_, err = kv.Update(ctx, name, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			continue // another run wrote first: read again
		}
		if err != nil {
			return Campaign{}, fmt.Errorf("campaign %s: %w", name, err)
		}
		return cur, nil
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// ReadCampaign returns the campaign name of stream's bucket, or
// ErrNoCampaign.
func ReadCampaign(ctx context.Context, js jetstream.JetStream, stream, name string) (Campaign, error) {
	if err := ValidCampaign(name); err != nil {
		return Campaign{}, err
	}
	kv, err := campaignKV(ctx, js, stream, false)
	if err != nil {
		return Campaign{}, err
	}
	c, _, err := getCampaign(ctx, kv, name)
	return c, err
}

func getCampaign(ctx context.Context, kv jetstream.KeyValue, name string) (Campaign, uint64, error) {
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Campaign{}, 0, ErrNoCampaign
	}
	if err != nil {
		return Campaign{}, 0, fmt.Errorf("campaign %s: %w", name, err)
	}
	var c Campaign
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Campaign{}, 0, fmt.Errorf("campaign %s: record: %w", name, err)
	}
	return c, e.Revision(), nil
}

func (c *Client) stream() string {
	if c.cfg.Stream != "" {
		return c.cfg.Stream
	}
	return DefaultStream
}

// ListCampaigns returns every campaign of stream's bucket (none when the
// bucket does not exist), in one pass over the bucket.
func ListCampaigns(ctx context.Context, js jetstream.JetStream, stream string) ([]Campaign, error) {
	kv, err := campaignKV(ctx, js, stream, false)
	if errors.Is(err, ErrNoCampaign) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []Campaign
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("campaigns: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil {
				return out, nil // the initial values are all read
			}
			var c Campaign
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				continue // not a record this version reads
			}
			out = append(out, c)
		}
	}
}
