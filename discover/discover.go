// Package discover lists the disabled build jobs of projects through the
// CodeArts reads, paging as the API pages, under the worker's rate limiter,
// classification and backoff.
//
// Invariants:
//   - A page is never skipped: a throttle or a transient failure (5xx,
//     timeout, connection error) is retried with backoff for as long as the
//     context lasts, a throttle lowering the limiter's rate as it does for
//     the worker. What is wrong for every page (401, 403, 404 APIG.0101, a
//     400) ends the run with that error; so does an answer that stays
//     unreadable after a few tries.
//   - Each job is reported at most once per run, whatever the page base:
//     a list is paged from page_index 0; a list that counts pages from 1
//     (0 read as 1, or 0 refused with a 400) is recognised by its second
//     page repeating the first, or by the 400, and paged on from there.
//     A list whose later pages repeat earlier ones ends the run with an
//     error rather than loop.
//   - A list ends when the jobs seen reach the answer's total, at an empty
//     page, or, when the answer gives no total, at a short page.
//   - The reads of a run share one circuit breaker (retry.Breaker, the
//     worker's state machine): when most recent reads failed with a 5xx or
//     a timeout it opens, and every read waits while one half-open probe at
//     a time asks the API, so an outage costs the probes, not a retry per
//     read in flight; the first successful probe closes it.
package discover

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// API is the reads discovery makes; *codearts.Client has them.
type API interface {
	ListProjectJobs(ctx context.Context, projectID string, pageIndex, pageSize int) (codearts.Page, error)
	ListJobs(ctx context.Context, pageIndex, pageSize int) (codearts.Page, error)
	JobState(ctx context.Context, jobID, region string) (codearts.JobState, error)
}

// Limiter paces calls and learns from their answers; *retry.Limiter is one.
type Limiter interface {
	Wait(ctx context.Context) error
	Throttled(retryAfter time.Duration)
	Succeeded()
}

// Filter selects among disabled jobs. The zero Filter selects all.
type Filter struct {
	// DisabledAfter keeps jobs disabled at or after it (zero: any time).
	// It needs each job's state read (one ShowDisable per disabled job).
	DisabledAfter time.Time
	// DisabledBy keeps jobs disabled by one of these (empty: anyone). It
	// needs each job's state read.
	DisabledBy []string
	// Name keeps jobs whose name matches this pattern (path.Match syntax:
	// *, ?, [a-z]; empty: any name). It needs no extra read.
	Name string
}

// needsState reports whether the filter reads each disabled job's state.
func (f Filter) needsState() bool { return !f.DisabledAfter.IsZero() || len(f.DisabledBy) > 0 }

// Validate names a bad field.
func (f Filter) Validate() error {
	if _, err := path.Match(f.Name, ""); err != nil {
		return fmt.Errorf("name pattern %q: %w", f.Name, err)
	}
	return nil
}

// Config configures a Run.
type Config struct {
	// API makes the reads. Required.
	API API
	// Projects are the projects to list (ShowJobListByProjectId), in order.
	Projects []string
	// AllProjects lists every job the credentials see instead (ListJob);
	// Projects must then be empty.
	AllProjects bool
	// PageSize is the page size asked for; default and most 100.
	PageSize int
	// Filter selects among the disabled jobs.
	Filter Filter
	// Details reads each disabled job's state (who disabled it, why,
	// when) even when the filter does not need it: one more read per job.
	Details bool
	// StateReads is how many state reads of one page are in flight at
	// once (each still waits for the Limiter). Default 8.
	StateReads int
	// Limiter paces every read; nil means none.
	Limiter Limiter
	// Policy is the backoff between tries of one read (its MaxElapsed
	// only restarts the backoff: a read is retried until ctx ends).
	Policy retry.Policy
	// Classifier classifies failed reads; nil means retry.Classify.
	Classifier *retry.Classifier
	// Breaker tunes the run's circuit breaker (zero: the worker's
	// defaults).
	Breaker retry.BreakerConfig
	// MaxUnreadable is how many times an unreadable answer is tried before
	// the run ends with it. Default 3.
	MaxUnreadable int
	// Progress, when set, is called after each page (its state reads
	// done), from Run's goroutine.
	Progress func(Progress)
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.API == nil:
		return errors.New("discover: API is required")
	case c.AllProjects && len(c.Projects) > 0:
		return errors.New("discover: give projects or all projects, not both")
	case !c.AllProjects && len(c.Projects) == 0:
		return errors.New("discover: no project: give at least one project id, or all projects")
	case c.PageSize < 0 || c.PageSize > codearts.MaxPageSize:
		return fmt.Errorf("discover: page size %d is not 1 to %d", c.PageSize, codearts.MaxPageSize)
	case c.StateReads < 0:
		return fmt.Errorf("discover: state reads %d is negative", c.StateReads)
	case c.MaxUnreadable < 0:
		return fmt.Errorf("discover: max unreadable %d is negative", c.MaxUnreadable)
	}
	for _, p := range c.Projects {
		if p == "" {
			return errors.New("discover: an empty project id")
		}
	}
	return c.Filter.Validate()
}

// Job is a disabled job found, as discover prints it.
type Job struct {
	ID        string `json:"job_id"`
	ProjectID string `json:"project_id,omitempty"`
	Name      string `json:"name,omitempty"`
	Creator   string `json:"creator,omitempty"`
	// DisabledBy, DisabledReason and DisabledAt are set when the job's
	// state was read (Config.Details or a filter that needs it).
	DisabledBy     string    `json:"disabled_by,omitempty"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
}

// Progress is how far a Run got.
type Progress struct {
	// Project is the list being read ("" for all projects).
	Project string `json:"-"`
	// Lists counts the lists finished (projects, or 1 for all projects).
	Lists int `json:"lists"`
	// Pages counts the pages read.
	Pages int `json:"pages"`
	// Total sums the totals the lists' answers gave so far (-1 none yet).
	Total int `json:"total"`
	// Listed counts the distinct jobs seen; Disabled those disabled.
	Listed   int `json:"listed"`
	Disabled int `json:"disabled"`
	// StateReads counts the jobs' states read; Enabled those found enabled
	// since the list (not reported); Gone those deleted since (422/404).
	StateReads int `json:"state_reads"`
	Enabled    int `json:"enabled_since"`
	Gone       int `json:"gone"`
	// Matched counts the jobs reported.
	Matched int `json:"matched"`
	// Retries counts reads tried again; Throttles those answered with a
	// throttle.
	Retries   int `json:"retries"`
	Throttles int `json:"throttles"`
	// BreakerOpened counts the times the reads' breaker opened (an
	// outage: reads then wait for its probes).
	BreakerOpened int `json:"breaker_opened"`
	// Elapsed is the time since Run began.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Run lists the disabled jobs cfg selects and hands each to emit, in list
// order, as pages arrive. It returns how far it got; an error from emit
// ends the run with that error.
func Run(ctx context.Context, cfg Config, emit func(Job) error) (Progress, error) {
	if err := cfg.Validate(); err != nil {
		return Progress{}, err
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = codearts.MaxPageSize
	}
	if cfg.MaxUnreadable == 0 {
		cfg.MaxUnreadable = 3
	}
	if cfg.StateReads == 0 {
		cfg.StateReads = 8
	}
	d := &run{cfg: cfg, emit: emit, start: time.Now(), seen: make(map[string]struct{}),
		br: retry.NewBreaker(cfg.Breaker), brChanged: make(chan struct{})}
	d.p.Total = -1
	if cfg.AllProjects {
		err := d.list(ctx, "")
		return d.progress(), err
	}
	for _, p := range cfg.Projects {
		if err := d.list(ctx, p); err != nil {
			return d.progress(), err
		}
	}
	return d.progress(), nil
}

type run struct {
	cfg   Config
	emit  func(Job) error
	start time.Time
	// mu guards p while a page's state reads run (state, call); between
	// pages only Run's goroutine touches it.
	mu   sync.Mutex
	p    Progress
	seen map[string]struct{} // across lists: a job is reported once

	// bmu guards the breaker; brChanged is closed (and replaced) when a
	// probe's answer is recorded, waking the reads that wait for it.
	bmu       sync.Mutex
	br        *retry.Breaker
	brChanged chan struct{}
}

// admit waits until the breaker lets a read go out, and says whether it is
// the probe. key names the read, so a read whose probe failed yields the
// next probe to another.
func (d *run) admit(ctx context.Context, key string) (probe bool, err error) {
	for {
		d.bmu.Lock()
		a := d.br.Admit(time.Now(), key)
		changed := d.brChanged
		d.bmu.Unlock()
		if a.Go {
			return a.Probe, nil
		}
		if err := waitChange(ctx, changed, a.Wait); err != nil {
			return false, err
		}
	}
}

// waitChange waits for changed to close or, when d > 0, for d.
func waitChange(ctx context.Context, changed <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
	case <-timeout:
	}
	return nil
}

// record feeds a read's answer to the breaker; a probe's answer wakes the
// reads waiting for it.
func (d *run) record(class retry.Class, probe bool) {
	d.bmu.Lock()
	defer d.bmu.Unlock()
	was := d.br.Record(time.Now(), retry.VerdictOf(class), probe)
	if probe || was != d.br.State() {
		close(d.brChanged)
		d.brChanged = make(chan struct{})
	}
	if d.br.State() != retry.BreakerClosed && was == retry.BreakerClosed {
		d.mu.Lock()
		d.p.BreakerOpened++
		d.mu.Unlock()
	}
}

func (d *run) progress() Progress {
	p := d.p
	p.Elapsed = time.Since(d.start)
	return p
}

func (d *run) report() {
	if d.cfg.Progress != nil {
		d.cfg.Progress(d.progress())
	}
}

// list pages through one list: project's, or every project's for "".
func (d *run) list(ctx context.Context, project string) error {
	what := "project " + project
	if project == "" {
		what = "all projects"
	}
	d.p.Project = project
	seen := make(map[string]struct{})
	total, index, refused := -1, 0, false
	for {
		var page codearts.Page
		err := d.call(ctx, fmt.Sprint(what, "/", index), func(ctx context.Context) (err error) {
			if project == "" {
				page, err = d.cfg.API.ListJobs(ctx, index, d.cfg.PageSize)
			} else {
				page, err = d.cfg.API.ListProjectJobs(ctx, project, index, d.cfg.PageSize)
			}
			return err
		})
		if err != nil {
			if index == 0 && !refused && d.classify(err) == retry.ClientError {
				// This list counts pages from 1 and refuses page 0.
				index, refused = 1, true
				continue
			}
			return fmt.Errorf("%s, page %d: %w", what, index, err)
		}
		d.p.Pages++
		added := 0
		var disabled []codearts.JobSummary
		for _, j := range page.Jobs {
			if _, dup := seen[j.ID]; dup {
				continue
			}
			seen[j.ID] = struct{}{}
			added++
			if _, dup := d.seen[j.ID]; dup {
				continue // listed by an earlier project
			}
			d.seen[j.ID] = struct{}{}
			d.p.Listed++
			if !j.Disabled {
				continue
			}
			d.p.Disabled++
			if j.ProjectID == "" {
				j.ProjectID = project
			}
			disabled = append(disabled, j)
		}
		if err := d.considerPage(ctx, disabled); err != nil {
			return err
		}
		if page.Total >= 0 {
			if d.p.Total < 0 {
				d.p.Total = 0
			}
			if total >= 0 {
				d.p.Total -= total
			}
			total = page.Total
			d.p.Total += total
		}
		d.report()
		switch {
		case len(page.Jobs) == 0,
			total >= 0 && len(seen) >= total,
			total < 0 && len(page.Jobs) < d.cfg.PageSize:
			d.p.Lists++
			d.report()
			return nil
		case added == 0 && (index != 1 || refused):
			return fmt.Errorf("%s, page %d: the page repeats earlier pages (%d of %d jobs seen): the list does not page", what, index, len(seen), total)
		}
		index++
	}
}

// considerPage reports the page's disabled jobs the filter keeps, in list
// order, reading their states (StateReads at a time) when asked.
func (d *run) considerPage(ctx context.Context, disabled []codearts.JobSummary) error {
	f := d.cfg.Filter
	var kept []codearts.JobSummary
	for _, j := range disabled {
		if f.Name != "" {
			if ok, _ := path.Match(f.Name, j.Name); !ok { // the pattern was validated
				continue
			}
		}
		kept = append(kept, j)
	}
	jobs := make([]*Job, len(kept))
	if f.needsState() || d.cfg.Details {
		errs := make([]error, len(kept))
		sem := make(chan struct{}, d.cfg.StateReads)
		var wg sync.WaitGroup
		for i, j := range kept {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				jobs[i], errs[i] = d.state(ctx, j)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, e := range errs {
				if e != nil {
					return e // the first in list order
				}
			}
		}
	} else {
		for i, j := range kept {
			jobs[i] = &Job{ID: j.ID, ProjectID: j.ProjectID, Name: j.Name, Creator: j.Creator}
		}
	}
	for _, j := range jobs {
		if j == nil {
			continue
		}
		d.p.Matched++
		if err := d.emit(*j); err != nil {
			return err
		}
	}
	return nil
}

// state reads j's state and returns the job to report, or nil when it is
// enabled or deleted since the list, or the filter drops it.
func (d *run) state(ctx context.Context, j codearts.JobSummary) (*Job, error) {
	var st codearts.JobState
	err := d.call(ctx, j.ID, func(ctx context.Context) (err error) {
		st, err = d.cfg.API.JobState(ctx, j.ID, "")
		return err
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.classify(err) == retry.ClientError {
			d.p.Gone++ // deleted since the list
			return nil, nil
		}
		return nil, fmt.Errorf("job %s: %w", j.ID, err)
	}
	d.p.StateReads++
	if !st.Disabled {
		d.p.Enabled++
		return nil, nil
	}
	job := &Job{ID: j.ID, ProjectID: j.ProjectID, Name: j.Name, Creator: j.Creator,
		DisabledBy: st.DisabledBy, DisabledReason: st.Reason, DisabledAt: st.DisabledAt}
	if job.Name == "" {
		job.Name = st.Name
	}
	f := d.cfg.Filter
	if !f.DisabledAfter.IsZero() && (st.DisabledAt.IsZero() || st.DisabledAt.Before(f.DisabledAfter)) {
		return nil, nil
	}
	if len(f.DisabledBy) > 0 && !slices.Contains(f.DisabledBy, st.DisabledBy) {
		return nil, nil
	}
	return job, nil
}

// count adds one to a counter of p, from any goroutine.
func (d *run) count(n *int) {
	d.mu.Lock()
	*n++
	d.mu.Unlock()
}

func (d *run) classify(err error) retry.Class {
	if d.cfg.Classifier != nil {
		return d.cfg.Classifier.Classify(err)
	}
	return retry.Classify(err)
}

// call makes one read, retrying throttles and transient failures until
// ctx ends; see the package's invariants.
func (d *run) call(ctx context.Context, key string, read func(context.Context) error) error {
	bo := d.cfg.Policy.New()
	unreadable := 0
	for {
		probe, err := d.admit(ctx, key)
		if err != nil {
			return err
		}
		if d.cfg.Limiter != nil {
			if err := d.cfg.Limiter.Wait(ctx); err != nil {
				d.record(retry.Canceled, probe) // a probe not sent says nothing
				return err
			}
		}
		err = read(ctx)
		if err == nil {
			d.record(retry.Success, probe)
			if d.cfg.Limiter != nil {
				d.cfg.Limiter.Succeeded()
			}
			return nil
		}
		if ctx.Err() != nil {
			d.record(retry.Canceled, probe)
			return ctx.Err()
		}
		class := d.classify(err)
		d.record(class, probe)
		switch {
		case errors.Is(err, codearts.ErrUnreadable):
			if unreadable++; unreadable >= d.cfg.MaxUnreadable {
				return err
			}
		case class == retry.Throttled:
			d.count(&d.p.Throttles)
			if d.cfg.Limiter != nil {
				d.cfg.Limiter.Throttled(retry.RetryAfter(err))
			}
		case class == retry.Transient:
		default:
			return err
		}
		d.count(&d.p.Retries)
		wait, ok := d.cfg.Policy.Next(bo, err)
		if !ok {
			// The backoff's budget is spent; a read is never given up for
			// a throttle or an outage: start the backoff again.
			bo.Reset()
			if wait, ok = d.cfg.Policy.Next(bo, err); !ok {
				wait = d.cfg.Policy.WithDefaults().MaxRetryAfter
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
