package worker

import (
	"context"
	"errors"
	"sync"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// StateReader reads whether a request's job is disabled (ShowDisable, GET
// /v1/job/{job_id}/check/disable), for Config.Verify and
// Config.SkipEnabled. Its errors are classified as the recover's are.
type StateReader interface {
	Disabled(ctx context.Context, req Request) (disabled bool, requestID string, err error)
}

// ReasonNotRecovered is the dead-letter reason of a request whose recover
// kept answering success while the job stayed disabled (Config.Verify)
// until its attempt budget was spent.
const ReasonNotRecovered = "not_recovered"

// ErrStillDisabled is the error of a try whose recover answered success but
// whose job was read back still disabled (Config.Verify). It is retried as
// a transient failure, without counting against the API at the breaker,
// and a request whose budget it spends is dead-lettered not_recovered.
var ErrStillDisabled = errors.New("recover answered success, but the job is still disabled (ShowDisable)")

// errAlreadyEnabled ends a request whose job was read enabled before any
// recover (Config.SkipEnabled): outcome already_enabled.
var errAlreadyEnabled = errors.New("the job is not disabled: recover not called")

// verifier wraps the Recoverer with the reads Verify and SkipEnabled ask
// for. Each read after the first call of a try waits for the limiter, as a
// call does: the reads spend the same quota as recovers.
type verifier struct {
	rec          Recoverer
	states       StateReader
	lim          Limiter
	verify, skip bool

	// unread holds the requests whose recover answered success but whose
	// read back failed: their next try reads first and recovers again
	// only if the job is still disabled. Bounded by maxUnread.
	mu     sync.Mutex
	unread map[unreadKey]struct{}
}

// unreadKey names a request to the verifier: its job in its region.
type unreadKey struct{ job, region string }

// maxUnread bounds verifier.unread: past it an arbitrary entry is dropped
// (its next try recovers again, which is harmless, only dearer).
const maxUnread = 10_000

func (v *verifier) Recover(ctx context.Context, req Request) (string, error) {
	key := unreadKey{req.JobID, req.Region}
	unread := v.verify && v.take(key)
	if v.skip || unread {
		disabled, rid, err := v.states.Disabled(ctx, req)
		if err != nil {
			if unread {
				v.mark(key) // still unread
			}
			return rid, err
		}
		switch {
		case !disabled && !unread:
			return rid, errAlreadyEnabled
		case !disabled:
			// A previous try recovered it; its read failed, this one says
			// enabled: recovered and verified, without a second recover.
			return rid, nil
		}
		if err := v.wait(ctx, req.Region); err != nil {
			return "", err
		}
	}
	rid, err := v.rec.Recover(ctx, req)
	if err != nil || !v.verify {
		return rid, err
	}
	if err := v.wait(ctx, req.Region); err != nil {
		v.mark(key)
		return rid, err
	}
	disabled, _, err := v.states.Disabled(ctx, req)
	switch {
	case err != nil:
		// The recover was applied; the read failed. The try is retried as
		// the read's answer says, and reads before it recovers again.
		v.mark(key)
		return rid, err
	case disabled:
		return rid, ErrStillDisabled
	}
	return rid, nil
}

// take reports whether key's recover was applied unread, and forgets it.
func (v *verifier) take(key unreadKey) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.unread[key]
	delete(v.unread, key)
	return ok
}

func (v *verifier) mark(key unreadKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.unread == nil {
		v.unread = make(map[unreadKey]struct{})
	}
	if len(v.unread) >= maxUnread {
		for k := range v.unread {
			delete(v.unread, k)
			break
		}
	}
	v.unread[key] = struct{}{}
}

func (v *verifier) wait(ctx context.Context, region string) error {
	if v.lim == nil {
		return nil
	}
	return v.lim.Wait(ctx, region)
}

// verdict adjusts a try's class for the verifier's answers: a job found
// enabled is a success with outcome already_enabled; a job still disabled
// is a transient failure for the request but a success for the breaker
// (the API answered, and answered well).
func verdict(class retry.Class, err error) (callClass, gateClass retry.Class, outcome string) {
	switch {
	case errors.Is(err, errAlreadyEnabled):
		return retry.Success, retry.Success, OutcomeAlreadyEnabled
	case errors.Is(err, ErrStillDisabled):
		return retry.Transient, retry.Success, OutcomeRecovered
	}
	return class, class, OutcomeRecovered
}

// exhaustedReason is the dead-letter reason of a request whose budget the
// last error spent.
func exhaustedReason(err error) string {
	if errors.Is(err, ErrStillDisabled) {
		return ReasonNotRecovered
	}
	return ReasonRetriesExhausted
}
