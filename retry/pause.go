package retry

import "time"

// PauseConfig tunes a Pause. Zero values mean the documented defaults.
type PauseConfig struct {
	// Probe is the first wait between probes while paused; it doubles up
	// to MaxProbe. Defaults 2s and 1m.
	Probe    time.Duration
	MaxProbe time.Duration
	// Lease is how long a fleet-wide consumer pause is set for; it is
	// renewed while paused, so a replica that dies while paused does not
	// stop the fleet forever. Default 2m.
	Lease time.Duration
	// ForbiddenRun is how many 403s on distinct jobs, with no success in
	// between, pause like a 401. Default 20.
	ForbiddenRun int
}

func (c PauseConfig) withDefaults() PauseConfig {
	if c.Probe <= 0 {
		c.Probe = 2 * time.Second
	}
	if c.MaxProbe <= 0 {
		c.MaxProbe = time.Minute
	}
	c.MaxProbe = max(c.MaxProbe, c.Probe)
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.ForbiddenRun <= 0 {
		c.ForbiddenRun = 20
	}
	return c
}

// PauseAction is what the owner of a Pause must do after a Record.
type PauseAction int

// Pause actions.
const (
	// Keep: nothing to do.
	Keep PauseAction = iota
	// PauseNow: consumption stops; pause the consumer until PauseChange.Until
	// (a new pause, or the renewal after a failed probe).
	PauseNow
	// ResumeNow: an answer proved the credentials and configuration good.
	ResumeNow
)

// PauseChange is the outcome of one Record.
type PauseChange struct {
	Action PauseAction
	// Until is the end of the consumer pause's lease (PauseNow).
	Until time.Time
	// New: the pause began with this answer (PauseNow), for the one error
	// line that says why.
	New bool
	// Was is the reason of the pause that ended (ResumeNow).
	Was string
	// JobLevel: a 403 from a job held through a 403-run pause that ended
	// since (an answer proved the credentials after its last 403): it is
	// about the job, to be dead-lettered, and counts toward no run.
	JobLevel bool
	// Changed: waiters should look again (the state changed, or a success
	// gave a verdict on held 403s).
	Changed bool
}

// maxHeld bounds the held set: entries of jobs that ended otherwise (nak,
// shutdown) are dropped wholesale past it, which costs at most one more
// retry each.
const maxHeld = 1 << 14

// Pause is the credential and configuration pause: a pure, clock-driven
// state machine (no I/O, no clock of its own, not safe for concurrent use).
//
// A 401 or a configuration-level answer pauses; so does a run of 403s on
// distinct jobs with no success in between (a missing IAM permission).
// While paused, one probe at a time goes out with backoff; only a failed
// probe backs the next one off (calls that were in flight when the pause
// began answer the same and say nothing new). Any answer that proves the
// credentials good (a success, a client error) resumes. Jobs whose probe
// failed yield the next probe to jobs that have not tried, so a request
// that can prove the credentials is not starved by held ones that cannot.
type Pause struct {
	cfg     PauseConfig
	paused  bool
	reason  string
	wait    time.Duration
	next    time.Time // earliest next probe
	probing bool

	okGen     uint64              // bumped by each success
	forbidden map[string]struct{} // distinct jobs answered 403 since the last success
	// held maps a job retried after a 403-run pause to the resumes count at
	// that time. Once a resume has happened since, its next 403 is about
	// the job, so a block of forbidden jobs does not pause, resume and retry
	// in a loop.
	held    map[string]uint64
	resumes uint64
	failed  map[string]struct{} // jobs whose probe failed in this pause
	// follow: the fleet is paused and another replica probes (FleetPaused).
	follow bool
}

// NewPause returns a Pause, not paused.
func NewPause(cfg PauseConfig) *Pause {
	return &Pause{
		cfg: cfg.withDefaults(), forbidden: map[string]struct{}{}, held: map[string]uint64{},
		failed: map[string]struct{}{},
	}
}

// Paused reports whether consumption is paused, and why.
func (p *Pause) Paused() (bool, string) { return p.paused, p.reason }

// Successes counts successes so far; a 403 waiting for a verdict watches it.
func (p *Pause) Successes() uint64 { return p.okGen }

// Admit decides whether a call for job may go out at now: always when not
// paused; while paused, only the probe, when due.
func (p *Pause) Admit(now time.Time, job string) Admission {
	switch {
	case !p.paused:
		return Admission{Go: true}
	case p.probing || p.follow: // wait for the probe's answer, here or another replica's
		return Admission{}
	case now.Before(p.next):
		return Admission{Wait: p.next.Sub(now)}
	case p.mayProbe(now, job):
		p.probing = true
		return Admission{Go: true, Probe: true}
	default: // due, but this job failed one: others first
		return Admission{Wait: max(p.next.Add(p.wait).Sub(now), time.Millisecond)}
	}
}

// mayProbe says whether job may take a due probe: at once if it has not
// failed one in this pause, else only a period after it is due (no other
// job took it), so probes never stop.
func (p *Pause) mayProbe(now time.Time, job string) bool {
	_, failed := p.failed[job]
	return !failed || now.Sub(p.next) >= p.wait
}

// Record feeds one call's class (and error code, for the reason); probe says
// the call was admitted as the probe.
func (p *Pause) Record(now time.Time, job string, class Class, code string, probe bool) PauseChange {
	switch class {
	case Unauthorized, Configuration:
		if probe && p.paused {
			p.failed[job] = struct{}{}
		}
		return p.pause(now, PauseReason(class, code), probe)
	case Forbidden:
		if at, held := p.held[job]; held && p.resumes > at {
			// About this job: neither part of a run nor, as a probe, a
			// verdict on the pause.
			delete(p.held, job)
			c := p.inconclusive(now, probe)
			c.JobLevel = true
			return c
		}
		if p.paused {
			if probe {
				p.failed[job] = struct{}{}
			}
			// Part of the run, however late its handler reaches its verdict.
			p.Hold(job)
			return p.pause(now, p.reason, probe) // a probe answered 403 again
		}
		p.forbidden[job] = struct{}{}
		if len(p.forbidden) >= p.cfg.ForbiddenRun {
			// The run's 403s wait through the pause they start: each is
			// retried after the resume, even one whose handler comes to its
			// verdict only after the resume (a loaded machine).
			for j := range p.forbidden {
				p.Hold(j)
			}
			return p.pause(now, "a run of 403s on distinct jobs: missing IAM permission?", probe)
		}
		return PauseChange{}
	case Success, ClientError:
		delete(p.held, job)
		var c PauseChange
		if class == Success {
			p.okGen++
			clear(p.forbidden)
			c.Changed = true
		}
		if p.paused {
			c = p.resume()
		}
		return c
	default: // Transient, Throttled, Canceled
		return p.inconclusive(now, probe)
	}
}

// HeldThroughResume reports whether job's 403 was part of a run (held) and
// the pause has ended since: it is retried, not judged by the successes
// that ended the pause, and its next 403 is about the job.
func (p *Pause) HeldThroughResume(job string) bool {
	at, held := p.held[job]
	return held && p.resumes > at
}

// Hold records that job waits through the current pause after a 403 (its
// next 403 after a resume is about the job).
func (p *Pause) Hold(job string) {
	if len(p.held) >= maxHeld {
		clear(p.held)
	}
	p.held[job] = p.resumes
}

func (p *Pause) pause(now time.Time, reason string, probe bool) PauseChange {
	c := PauseChange{Action: PauseNow, Changed: true}
	switch {
	case !p.paused:
		p.paused, p.reason, p.wait = true, reason, p.cfg.Probe
		c.New = true
	case probe:
		p.wait = min(p.wait*2, p.cfg.MaxProbe)
	default:
		return PauseChange{}
	}
	p.probing = false
	p.next = now.Add(p.wait)
	c.Until = now.Add(p.cfg.Lease)
	return c
}

func (p *Pause) resume() PauseChange {
	c := PauseChange{Action: ResumeNow, Was: p.reason, Changed: true}
	p.paused, p.probing, p.reason, p.follow = false, false, "", false
	p.resumes++
	clear(p.failed)
	clear(p.forbidden)
	return c
}

// inconclusive lets another probe go a period later when this call was the
// probe and its answer says nothing about credentials.
func (p *Pause) inconclusive(now time.Time, probe bool) PauseChange {
	if probe && p.paused {
		p.probing = false
		p.next = now.Add(p.wait)
		return PauseChange{Changed: true}
	}
	return PauseChange{}
}

// FleetPaused applies the fleet's word that the region is paused (another
// replica's answers paused it), for reason. probe: this replica probes for the
// fleet (its first probe a Probe wait from now); else it follows: it admits no
// call until FleetResumed or Alone. A new pause is PauseNow, as from Record.
func (p *Pause) FleetPaused(now time.Time, reason string, probe bool) PauseChange {
	p.follow = !probe
	if p.paused {
		return PauseChange{Changed: true}
	}
	p.paused, p.reason, p.wait, p.probing = true, reason, p.cfg.Probe, false
	p.next = now.Add(p.wait)
	return PauseChange{Action: PauseNow, Until: now.Add(p.cfg.Lease), New: true, Changed: true}
}

// FleetResumed applies the fleet's word that a probe proved the credentials
// and configuration good (here or on another replica): ResumeNow if paused.
func (p *Pause) FleetResumed() PauseChange {
	p.follow = false
	if !p.paused {
		return PauseChange{}
	}
	return p.resume()
}

// Alone makes the pause decide on this replica's answers only (the fleet's
// state is not known): a paused region probes here again.
func (p *Pause) Alone() { p.follow = false }

// Due reports whether a probe from this replica is due at now: paused, this
// replica probes (it does not follow another's), none is out and its time
// has come. A pause whose probe is due with no request to probe with has to
// let requests in (the fleet-wide consumer pause must not outlive its cause).
func (p *Pause) Due(now time.Time) bool {
	return p.paused && !p.probing && !p.follow && !now.Before(p.next)
}

// NextProbe is the wait before the next probe while paused.
func (p *Pause) NextProbe() time.Duration { return p.wait }

// PauseReason says why a pausing answer pauses, for logs, readiness and the
// status page.
func PauseReason(class Class, code string) string {
	switch {
	case class == Unauthorized && code != "":
		return "api rejected the credentials (401 " + code + ")"
	case class == Unauthorized:
		return "api rejected the credentials (401)"
	case CanonicalCode(code) == "APIG.0101":
		return "the API is not published at this endpoint (APIG.0101): wrong --endpoint or --region?"
	case code != "":
		return "the API refuses every call (" + code + "): missing IAM permission or unavailable project?"
	default:
		return "the API refuses every call: configuration"
	}
}
