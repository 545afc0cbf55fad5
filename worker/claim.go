package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Claims records the one terminal outcome of each request, before any
// record of it is published. Without it two outcomes are possible: a dead
// letter stored, then the result publish or the ack fails, and the
// redelivery calls the API again and may store recovered too; a recovered
// request whose ack fails on its last delivery is dead-lettered
// max_deliveries by the sweep. queue.Outcomes implements it (a JetStream KV
// bucket, through internal/wire).
type Claims interface {
	// Claim stores value under key unless a value is stored there already
	// (first writer wins). It returns the value stored, and won: whether it
	// is this one.
	Claim(ctx context.Context, key string, value []byte) (stored []byte, won bool, err error)
	// Claimed returns the value stored under key; ok is false when there
	// is none.
	Claimed(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// ClaimKey is the key of the claim for the request stored at seq at time
// stored: the request's origin identity, as ResultID and DeadLetterID, so
// every redelivery, requeued copy and the sweep find the same claim.
func ClaimKey(seq uint64, stored time.Time) string {
	return seqID("", seq, stored)
}

// Claim is a request's terminal outcome as claimed: the outcome and the
// records that say it, exactly as they are (to be) published, so that
// whoever finds the claim publishes the same records again (their message
// ids make that a no-op when they are stored already) instead of its own.
type Claim struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// DeadLetter is the marshalled DeadLetter (≤ MaxDeadLetterSize); absent
	// unless Outcome is dead_lettered.
	DeadLetter json.RawMessage `json:"dead_letter,omitempty"`
	// Result is the marshalled Result (≤ MaxResultSize); absent with result
	// events off.
	Result json.RawMessage `json:"result,omitempty"`
}

// claimTimeout bounds each step of finishing a request (claim, a record's
// publish, the ack): a NATS that stopped answering hands the request back.
const claimTimeout = 10 * time.Second

// claimOutcome builds the claim of this delivery's outcome: the dead letter
// (for dead_lettered) and the result event.
func (p *Pool) claimOutcome(t *task, kind, reason string) (Claim, error) {
	c := Claim{Outcome: kind, Reason: reason}
	if kind == OutcomeDeadLettered {
		rec := p.deadLetterRecord(t, reason)
		data, err := rec.Marshal()
		if err != nil {
			return c, fmt.Errorf("dead letter: %w", err)
		}
		c.DeadLetter = data
	}
	if p.cfg.Results != nil {
		data, err := p.resultRecord(t, kind, reason)
		if err != nil {
			return c, fmt.Errorf("result event: %w", err)
		}
		c.Result = data
	}
	return c, nil
}

// claim records c as the request's outcome unless another is recorded, and
// returns the one recorded. Without Claims, c wins. A claim the server
// refuses as too large is made again with the dead letter's minimal form.
func (p *Pool) claim(ctx context.Context, t *task, c Claim) (Claim, bool, error) {
	if p.cfg.Claims == nil {
		return c, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	data, err := json.Marshal(c)
	if err != nil {
		return c, false, err
	}
	key := ClaimKey(t.seq, t.stored)
	stored, won, err := p.cfg.Claims.Claim(ctx, key, data)
	if tooLarge(err) && c.DeadLetter != nil {
		if c.DeadLetter, err = minimalDeadLetter(c.DeadLetter); err != nil {
			return c, false, err
		}
		if data, err = json.Marshal(c); err != nil {
			return c, false, err
		}
		stored, won, err = p.cfg.Claims.Claim(ctx, key, data)
	}
	if err != nil {
		return c, false, fmt.Errorf("claim %s: %w", key, err)
	}
	if won {
		return c, true, nil
	}
	// A value that is not a claim this worker could have made is never
	// acted on: the request goes back, and an operator sees the error.
	var had Claim
	if err := json.Unmarshal(stored, &had); err != nil {
		return c, false, fmt.Errorf("claim %s: %w (%d bytes): %w", key, errClaimUnreadable, len(stored), err)
	}
	if had.Outcome == "" {
		return c, false, fmt.Errorf("claim %s: %w (%d bytes, no outcome)", key, errClaimUnreadable, len(stored))
	}
	return had, false, nil
}

// errClaimUnreadable is a claim whose value this worker could not have
// written: waiting does not mend it.
var errClaimUnreadable = errors.New("unreadable value")

// errLeaseGone ends a wait whose delivery lost its lease (leaseLost has
// reported it): the request's new owner finishes it.
var errLeaseGone = errors.New("lease lost")

// claimHeld claims c, trying again while the claim fails (the KV is
// unavailable) for as long as the delivery keeps its lease: the outcome is
// decided, so waiting for the KV, heartbeats keeping the message, costs
// neither an API call nor a delivery, and a KV outage can never spend a
// request's deliveries into the max-deliveries sweep. It gives up when ctx
// ends (the drain timeout), on an unreadable claim, or with errLeaseGone.
func (p *Pool) claimHeld(ctx context.Context, t *task, c Claim) (Claim, bool, error) {
	wait := p.cfg.Backoff.Initial
	for {
		got, won, err := p.claim(ctx, t, c)
		if err == nil || errors.Is(err, errClaimUnreadable) {
			return got, won, err
		}
		t.logger().Warn("outcome not claimed yet; trying again (the request is kept)", zap.Duration("wait", wait), zap.Error(err))
		if serr := sleep(ctx, wait); serr != nil {
			return c, false, err
		}
		if p.leaseLost(t) {
			return c, false, errLeaseGone
		}
		wait = min(2*wait, p.cfg.Backoff.Max)
	}
}

// claimed returns the request's recorded outcome, if any: a redelivery or a
// requeued copy reads it before calling the API again. A read error is
// logged and treated as no claim: the claim made before any record is
// published still decides, so the error costs at most a repeated call.
func (p *Pool) claimed(ctx context.Context, t *task) (Claim, bool) {
	if p.cfg.Claims == nil {
		return Claim{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	key := ClaimKey(t.seq, t.stored)
	data, ok, err := p.cfg.Claims.Claimed(ctx, key)
	if err != nil {
		t.logger().Warn("outcome claim not read; working on the request (its claim decides)", zap.Error(err))
		return Claim{}, false
	}
	if !ok {
		return Claim{}, false
	}
	var c Claim
	if err := json.Unmarshal(data, &c); err != nil || c.Outcome == "" {
		t.logger().Warn("outcome claim unreadable; working on the request (its claim decides)", zap.Int("bytes", len(data)))
		return Claim{}, false
	}
	return c, true
}

// publishClaimed stores the claim's records: the dead letter (waiting for
// its ack), then the result event. Their ids make a repeat a no-op, so a
// crash between the claim and these publishes is healed by whoever finds
// the claim next.
func (p *Pool) publishClaimed(ctx context.Context, t *task, c Claim) (failed string, err error) {
	if c.DeadLetter != nil {
		if err := p.publishDeadLetter(ctx, t, c.DeadLetter); err != nil {
			return "dead_letter_failed", fmt.Errorf("dead letter: %w", err)
		}
		t.traceEvent("dead_letter_stored", attrReason.String(c.Reason))
	}
	if c.Result != nil && p.cfg.Results != nil {
		rctx, cancel := context.WithTimeout(ctx, claimTimeout)
		defer cancel()
		if err := p.cfg.Results.Result(rctx, ResultID(t.seq, t.stored), c.Result); err != nil {
			return "result_failed", fmt.Errorf("result event: %w", err)
		}
	}
	return "", nil
}

// publishDeadLetter stores a marshalled dead letter and waits for its ack.
// A record the server refuses as too large is refused for good (a retry
// would loop until someone purged the request), so it is stored again in
// its minimal form.
func (p *Pool) publishDeadLetter(ctx context.Context, t *task, data []byte) error {
	id := DeadLetterID(t.seq, t.stored)
	err := p.dlq.DeadLetter(ctx, id, data)
	if !tooLarge(err) {
		return err
	}
	t.logger().Warn("dead letter refused as too large; storing it without the original body and headers",
		zap.Int("record_bytes", len(data)), zap.Error(err))
	if data, err = minimalDeadLetter(data); err != nil {
		return err
	}
	return p.dlq.DeadLetter(ctx, id, data)
}

// minimalDeadLetter is a marshalled dead letter in its minimal form.
func minimalDeadLetter(data []byte) ([]byte, error) {
	var rec DeadLetter
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, errors.Join(errors.New("dead letter unreadable"), err)
	}
	m := rec.Minimal()
	return m.Marshal()
}
