package admin

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// TrackerConfig tunes a CampaignTracker.
type TrackerConfig struct {
	// MaxCampaigns is the most campaigns followed: the most recently
	// updated ones. Default 20.
	MaxCampaigns int
	// MaxJobs is the most jobs whose latest outcome is kept, over all the
	// campaigns followed (about 70 bytes each). Past it, results of new
	// jobs are counted by request and the campaign is marked Approximate
	// (a replayed job may then count twice). Default 100,000.
	MaxJobs int
	// ListEvery is the least time between two reads of the campaign
	// records (KV). Default 10s.
	ListEvery time.Duration
	// MaxAge: campaigns started longer ago are not followed (their result
	// events have expired). Default 7 days (the result stream's default).
	MaxAge time.Duration
	// ReportEvery is the least time between two full reports (the page's
	// downloads), which are cached meanwhile. Default 5s.
	ReportEvery time.Duration
	// MaxPendingRead bounds a report's read of the request stream for the
	// jobs in flight (see CampaignConfig). Default 20,000.
	MaxPendingRead int
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

// CampaignProgress is one followed campaign as the status page shows it.
type CampaignProgress struct {
	CampaignReport
	UpdatedAt time.Time `json:"updated_at"`
	// Approximate: some results were counted by request (TrackerConfig.MaxJobs).
	Approximate bool `json:"approximate,omitempty"`
}

// CampaignTracker follows the recent campaigns for the status page,
// incrementally: each Progress reads only the result events stored since
// the last one (it starts at the oldest followed campaign's start, found
// by time), so a refresh costs what arrived since, whatever the stream
// holds. Memory is bounded by MaxCampaigns and MaxJobs. Safe for
// concurrent use.
type CampaignTracker struct {
	conn *queue.Conn
	cfg  TrackerConfig

	mu       sync.Mutex // held while reading
	next     uint64     // the next result sequence to read; 0: not started
	camps    map[string]*followed
	jobs     int // entries over every tally
	listedAt time.Time
	relist   bool            // a result named a campaign not listed yet
	listed   map[string]bool // the campaigns of the last list, followed or not
	scanned  int64           // result events read, for tests of the bound

	rmu     sync.Mutex // one report at a time
	reports map[string]cachedReport
}

type followed struct {
	t           *tally
	updatedAt   time.Time
	approximate bool
}

type cachedReport struct {
	rep *CampaignReport
	at  time.Time
}

// NewCampaignTracker returns a tracker of conn's campaigns.
func NewCampaignTracker(conn *queue.Conn, cfg TrackerConfig) *CampaignTracker {
	if cfg.MaxCampaigns <= 0 {
		cfg.MaxCampaigns = 20
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 100_000
	}
	if cfg.ListEvery <= 0 {
		cfg.ListEvery = 10 * time.Second
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 5 * time.Second
	}
	if cfg.MaxPendingRead <= 0 {
		cfg.MaxPendingRead = 20_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &CampaignTracker{conn: conn, cfg: cfg, camps: map[string]*followed{}, reports: map[string]cachedReport{}}
}

// Jobs is the number of job entries the tracker holds (its memory bound).
func (c *CampaignTracker) Jobs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs
}

// Progress reads what is new and returns the followed campaigns, the most
// recently updated first.
func (c *CampaignTracker) Progress(ctx context.Context) ([]CampaignProgress, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	results := c.conn.Config().ResultStream
	now := c.cfg.Now()
	if c.relist || c.listedAt.IsZero() || now.Sub(c.listedAt) >= c.cfg.ListEvery {
		if err := c.list(ctx, results, now); err != nil {
			return nil, err
		}
	}
	if len(c.camps) > 0 {
		if c.next == 0 {
			return nil, errors.New("campaigns: no start") // list sets it whenever it follows one
		}
		last, err := c.conn.ScanFrom(ctx, results, c.next, func(m queue.StoredMsg) error {
			c.apply(m, "")
			return nil
		})
		if err != nil {
			return nil, err
		}
		c.next = max(c.next, last+1)
	}
	out := make([]CampaignProgress, 0, len(c.camps))
	for _, f := range c.camps {
		out = append(out, CampaignProgress{CampaignReport: *f.t.report(), UpdatedAt: f.updatedAt, Approximate: f.approximate})
	}
	slices.SortFunc(out, func(a, b CampaignProgress) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(a.Campaign, b.Campaign))
	})
	return out, nil
}

// apply counts a result event for the campaign it names, if followed (and,
// when only is set, only for that campaign).
func (c *CampaignTracker) apply(m queue.StoredMsg, only string) {
	c.scanned++
	res, ok := decodeResult(m.Data)
	if !ok || res.Campaign == "" || (only != "" && res.Campaign != only) {
		return
	}
	f := c.camps[res.Campaign]
	if f == nil {
		if !c.listed[res.Campaign] {
			c.relist = true // a campaign started since the last list
		}
		return
	}
	keep := c.jobs < c.cfg.MaxJobs
	if f.t.add(res, m.Seq, keep) {
		c.jobs++
	} else if !keep && res.JobID != "" {
		if _, seen := f.t.jobs[res.JobID]; !seen {
			f.approximate = true
		}
	}
}

// list reads the campaign records and follows the newest MaxCampaigns; a
// campaign newly followed is caught up from its start up to where the
// tracker reads, so it misses none of its results.
func (c *CampaignTracker) list(ctx context.Context, results string, now time.Time) error {
	recs, err := producer.ListCampaigns(ctx, c.conn.JS, c.conn.Config().Stream)
	if err != nil {
		return err
	}
	c.listedAt, c.relist = now, false
	c.listed = make(map[string]bool, len(recs))
	for _, r := range recs {
		c.listed[r.Name] = true
	}
	recs = slices.DeleteFunc(recs, func(r producer.Campaign) bool { return now.Sub(r.StartedAt) > c.cfg.MaxAge })
	slices.SortFunc(recs, func(a, b producer.Campaign) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(a.Name, b.Name))
	})
	recs = recs[:min(len(recs), c.cfg.MaxCampaigns)]
	keep := map[string]bool{}
	var added []producer.Campaign
	for _, r := range recs {
		keep[r.Name] = true
		if f := c.camps[r.Name]; f != nil {
			f.t.rec, f.updatedAt = r, r.UpdatedAt // size and update move with later runs
			continue
		}
		added = append(added, r)
	}
	for name, f := range c.camps {
		if !keep[name] {
			c.jobs -= len(f.t.jobs)
			delete(c.camps, name)
		}
	}
	for _, r := range added {
		from, err := c.conn.SeqAt(ctx, results, r.StartedAt.Add(-campaignStartMargin))
		if err != nil {
			return err
		}
		c.camps[r.Name] = &followed{t: newTally(r, false), updatedAt: r.UpdatedAt}
		if c.next == 0 {
			c.next = from // the first campaign: read on from its start
			continue
		}
		if from >= c.next {
			continue // nothing of it read yet
		}
		// Catch up on what was read before it was followed.
		upTo := c.next
		_, err = c.conn.ScanFrom(ctx, results, from, func(m queue.StoredMsg) error {
			if m.Seq >= upTo {
				return errCaughtUp
			}
			c.apply(m, r.Name)
			return nil
		})
		if err != nil && !errors.Is(err, errCaughtUp) {
			delete(c.camps, r.Name)
			return err
		}
	}
	return nil
}

var errCaughtUp = errors.New("caught up")

// Report is CollectCampaign with every job (its in-flight jobs read only
// when the request stream holds at most MaxPendingRead messages), one at a
// time and cached for ReportEvery: downloads from the page cannot make the
// streams be read more often than that.
func (c *CampaignTracker) Report(ctx context.Context, name string) (*CampaignReport, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	now := c.cfg.Now()
	if r, ok := c.reports[name]; ok && now.Sub(r.at) < c.cfg.ReportEvery {
		return r.rep, nil
	}
	rep, err := CollectCampaign(ctx, c.conn, name, CampaignConfig{Jobs: true, MaxPendingRead: c.cfg.MaxPendingRead})
	if err != nil {
		return nil, err
	}
	clear(c.reports) // one cached: bounded by the largest campaign
	c.reports[name] = cachedReport{rep: rep, at: now}
	return rep, nil
}
