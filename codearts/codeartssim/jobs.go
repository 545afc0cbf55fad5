package codeartssim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Job is a build job as the simulator holds it: the state the reads report
// and a successful recover changes.
type Job struct {
	ID        string
	Name      string
	ProjectID string
	Creator   string
	// Disabled is the job's state; DisabledBy, DisabledReason and
	// DisabledAt say who disabled it, why and when (kept after a recover,
	// as the real API keeps the last disable).
	Disabled       bool
	DisabledBy     string
	DisabledReason string
	DisabledAt     time.Time
	// Refuses makes recovers of the job answer success while its state
	// stays disabled: the case --verify exists for.
	Refuses bool
}

// JobSeed describes a catalog to generate: Jobs jobs spread over Projects
// projects (round robin), a share Disabled of them disabled, all from Seed,
// so two servers seeded alike hold the same jobs.
type JobSeed struct {
	Projects int
	Jobs     int
	Disabled float64 // share of jobs disabled, in [0, 1]
	Seed     uint64  // 0 takes 1
	// DisabledAt is when the disables happened: each job's time is up to an
	// hour before it (zero: the server's start).
	DisabledAt time.Time
}

// ListShape is how GET /v3/{project_id}/jobs answers.
type ListShape int

const (
	// ShapeSDK answers {"jobs":[…],"total":N}, as the SDK's model says, with
	// a one-based page_index (0 reads as 1).
	ShapeSDK ListShape = iota
	// ShapeResult answers {"result":{"job_list":[…],"total":N},"status":"success"}
	// with a zero-based page_index, as live answers are known to.
	ShapeResult
)

// MaxPageSize is the largest page_size the list reads accept; more is 400
// CB.00060200.
const MaxPageSize = 100

// catalog is the server's jobs, by project in creation order.
type catalog struct {
	mu       sync.RWMutex
	projects []string          // in creation order
	byProj   map[string][]*Job // each in creation order
	byID     map[string]*Job
}

func (c *catalog) add(j Job) {
	if c.byID == nil {
		c.byID = make(map[string]*Job)
		c.byProj = make(map[string][]*Job)
	}
	if old, ok := c.byID[j.ID]; ok {
		*old = j // same id: replace in place (project stays)
		return
	}
	p := &j
	if _, ok := c.byProj[j.ProjectID]; !ok {
		c.projects = append(c.projects, j.ProjectID)
	}
	c.byProj[j.ProjectID] = append(c.byProj[j.ProjectID], p)
	c.byID[j.ID] = p
}

// AddJobs puts jobs into the catalog (a job with a known id replaces it).
// Jobs the catalog does not hold are recovered as before the catalog
// existed: successfully, with no state to change.
func (s *Server) AddJobs(jobs ...Job) {
	s.cat.mu.Lock()
	defer s.cat.mu.Unlock()
	for _, j := range jobs {
		s.cat.add(j)
	}
}

// SeedJobs generates the catalog seed describes, adds it, and returns the
// jobs made, in project order.
func (s *Server) SeedJobs(seed JobSeed) []Job {
	jobs := GenerateJobs(seed, time.Now())
	s.AddJobs(jobs...)
	return jobs
}

// GenerateJobs makes the jobs seed describes; now stands for a zero
// seed.DisabledAt.
func GenerateJobs(seed JobSeed, now time.Time) []Job {
	if seed.Projects < 1 {
		seed.Projects = 1
	}
	if seed.Seed == 0 {
		seed.Seed = 1
	}
	at := seed.DisabledAt
	if at.IsZero() {
		at = now
	}
	rng := rand.New(rand.NewPCG(seed.Seed, 0x5eed)) //nolint:gosec // test data, not security
	hexID := func() string {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(b[8:], rng.Uint64())
		return hex.EncodeToString(b[:])
	}
	projects := make([]string, seed.Projects)
	for i := range projects {
		projects[i] = hexID()
	}
	disabled := int(float64(seed.Jobs)*min(max(seed.Disabled, 0), 1) + 0.5)
	// Which jobs are disabled: the first `disabled` of a shuffled order.
	order := rng.Perm(max(seed.Jobs, 0))
	isDisabled := make([]bool, max(seed.Jobs, 0))
	for _, i := range order[:disabled] {
		isDisabled[i] = true
	}
	people := []string{"ops-bot", "alice", "bob", "incident-42"}
	jobs := make([]Job, 0, max(seed.Jobs, 0))
	for i := range seed.Jobs {
		j := Job{
			ID:        hexID(),
			Name:      fmt.Sprintf("build-%05d", i),
			ProjectID: projects[i%seed.Projects],
			Creator:   people[1+i%3],
		}
		if isDisabled[i] {
			j.Disabled = true
			j.DisabledBy = people[rng.IntN(len(people))]
			j.DisabledReason = "disabled during the outage"
			j.DisabledAt = at.Add(-time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Millisecond)
		}
		jobs = append(jobs, j)
	}
	slices.SortStableFunc(jobs, func(a, b Job) int {
		return slices.Index(projects, a.ProjectID) - slices.Index(projects, b.ProjectID)
	})
	return jobs
}

// Disable disables jobID (in the catalog) as DisableBuildJob would, saying
// by whom, why and when; it reports whether the catalog holds the job.
func (s *Server) Disable(jobID, by, reason string, at time.Time) bool {
	s.cat.mu.Lock()
	defer s.cat.mu.Unlock()
	j, ok := s.cat.byID[jobID]
	if ok {
		j.Disabled, j.DisabledBy, j.DisabledReason, j.DisabledAt = true, by, reason, at
	}
	return ok
}

// Refuse makes recovers of jobID answer success without enabling it (on)
// or behave again (off); it reports whether the catalog holds the job.
func (s *Server) Refuse(jobID string, on bool) bool {
	s.cat.mu.Lock()
	defer s.cat.mu.Unlock()
	j, ok := s.cat.byID[jobID]
	if ok {
		j.Refuses = on
	}
	return ok
}

// Job returns the catalog's job jobID.
func (s *Server) Job(jobID string) (Job, bool) {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	j, ok := s.cat.byID[jobID]
	if !ok {
		return Job{}, false
	}
	return *j, true
}

// Jobs returns the catalog, project by project, each in creation order.
func (s *Server) Jobs() []Job {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	out := make([]Job, 0, len(s.cat.byID))
	for _, p := range s.cat.projects {
		for _, j := range s.cat.byProj[p] {
			out = append(out, *j)
		}
	}
	return out
}

// DisabledJobs returns the ids of the catalog's disabled jobs, in catalog
// order.
func (s *Server) DisabledJobs() []string {
	var out []string
	for _, j := range s.Jobs() {
		if j.Disabled {
			out = append(out, j.ID)
		}
	}
	return out
}

// Projects returns the catalog's project ids in creation order.
func (s *Server) Projects() []string {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	return slices.Clone(s.cat.projects)
}

// enable applies a successful recover of jobID to the catalog: a disabled
// job that does not refuse becomes enabled.
func (s *Server) enable(jobID string) {
	s.cat.mu.Lock()
	defer s.cat.mu.Unlock()
	if j, ok := s.cat.byID[jobID]; ok && !j.Refuses {
		j.Disabled = false
	}
}
