package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// task is one delivery being worked on.
type task struct {
	// lastBeat is when the server last surely heard of this delivery
	// (receipt, or an InProgress it confirmed received), as Pool.mono.
	lastBeat atomic.Int64
	// leaseGone is set once the server went AckWait or longer without
	// hearing of this delivery, even if it hears of it again later: it may
	// have handed the request to another worker meanwhile.
	leaseGone atomic.Bool

	d    Delivery
	base *zap.Logger
	log  *zap.Logger // base with the ids, built on first use by the handling goroutine only
	// seq and stored name the request: its first message's stream
	// sequence and store time (lin says where a requeued copy came from).
	seq    uint64
	stored time.Time
	lin    lineage
	n      uint64 // this message's delivery count
	tries  int    // transient failures of this delivery
	// held is the time this delivery waited without trying: at the gate
	// (breaker, pause), the rate limit and throttles. The backoff's
	// elapsed-time budget leaves it out.
	held  time.Duration
	req   Request
	start time.Time
	first time.Time // first API call of this delivery
	calls int       // API calls made by this delivery
	// last answer, for the dead letter
	status    int
	errorCode string
	errorMsg  string
	requestID string
	verified  bool // the job was read back enabled (Config.Verify)
	// trace is the request's trace and spans (trace.go); nil when tracing
	// is off and the producer sent no traceparent.
	trace *taskTrace
}

// ids are the fields that name the request on every line about it.
func (t *task) ids(more ...zap.Field) []zap.Field {
	f := make([]zap.Field, 0, 4+len(more))
	f = append(f, zap.Uint64("stream_seq", t.seq), zap.Uint64("delivery", t.n))
	if t.req.JobID != "" {
		f = append(f, zap.String("job_id", t.req.JobID))
	}
	if id := t.traceID(); id != "" {
		f = append(f, zap.String("trace_id", id))
	}
	return append(f, more...)
}

// logger is the request's child logger, built only when a line is written
// unsampled (warnings and errors): a bulk drain of successes builds none.
func (t *task) logger() *zap.Logger {
	if t.log == nil {
		t.log = t.base.With(t.ids()...)
	}
	return t.log
}

// newTask starts the work on one delivery: its identity (the first
// message's, for a requeued copy) and its lease.
func (p *Pool) newTask(d Delivery) *task {
	lin := lineageOf(d.Header(), d.StreamSeq(), d.Timestamp())
	t := &task{d: d, seq: lin.seq, stored: lin.stored, lin: lin, n: d.NumDelivered(), start: time.Now(), base: p.log}
	t.lastBeat.Store(int64(t.start.Sub(p.epoch)))
	return t
}

// handle takes one delivery to a terminal state (acked, dead-lettered then
// acked) or hands it back (nak). runCtx ending means shutdown has begun;
// workCtx ending means the drain timeout passed.
func (p *Pool) handle(runCtx, workCtx context.Context, d Delivery, s *slots) {
	t := p.newTask(d)
	p.startDelivery(workCtx, t)
	defer p.endDelivery(t)
	p.track(t)
	defer p.untrack(t)

	req, err := Decode(d.Body(), d.Header(), p.cfg.Decode)
	if err == nil {
		t.req = req
	}
	// A redelivery or a requeued copy may belong to a request that already
	// has its outcome (its ack failed, or the copy's original finished):
	// that outcome stands, and the API is not called again.
	if t.n > 1 || t.seq != d.StreamSeq() {
		if c, ok := p.claimed(workCtx, t); ok {
			t.logger().Info("outcome claimed already; storing its records and acking",
				zap.String("outcome", c.Outcome), zap.String("reason", c.Reason))
			p.settle(workCtx, t, c)
			return
		}
	}
	if err != nil {
		t.errorMsg = err.Error()
		p.deadLetter(workCtx, t, ReasonInvalidRequest)
		return
	}
	t.traceDecoded()
	region := p.flowRegion(req.Region)
	defer p.gate.enter(region)()

	// The request's own backoff (backoff v4 values are not safe to share);
	// its elapsed-time budget leaves out the holds.
	b := p.cfg.Backoff.NewExcluding(func() time.Duration { return t.held })
	for {
		// The previous try's span, when it went on without a wait.
		p.endCall(t)
		// Breaker open or paused: wait (heartbeats keep the message) unless
		// shutdown begins, then hand it back.
		since, held := t.waitStart(), time.Now()
		probe, err := p.gate.acquire(runCtx, region, req.JobID, s.hold)
		s.unhold()
		t.held += time.Since(held)
		t.traceWait("gate_wait", since)
		if err != nil {
			p.handBack(workCtx, t, 0, "shutdown")
			return
		}
		since, held = t.waitStart(), time.Now()
		err = p.limiterWait(workCtx, region)
		t.held += time.Since(held)
		t.traceWait("rate_limit_wait", since)
		if err != nil {
			p.gate.record(workCtx, region, req.JobID, retry.Canceled, "", probe)
			p.handBack(workCtx, t, 0, "drain_timeout")
			return
		}
		attempt := p.triesBefore(t) + t.tries + 1
		if t.first.IsZero() {
			t.first = time.Now()
		}
		select {
		case p.calls <- struct{}{}:
		case <-workCtx.Done():
			p.gate.record(workCtx, region, req.JobID, retry.Canceled, "", probe)
			p.handBack(workCtx, t, 0, "drain_timeout")
			return
		}
		callCtx := p.callContext(workCtx, t, attempt, probe != notProbe)
		started := time.Now()
		rid, err := p.recoverCall(callCtx, workCtx, req, probe)
		took := time.Since(started)
		t.calls++
		class, gateClass, outcome := verdict(p.cfg.Classifier.Classify(err), err)
		t.record(rid, err)
		breakerOpen, jobLevel403 := p.gate.record(workCtx, region, req.JobID, gateClass, t.errorCode, probe)
		t.traceCall(class.String(), err)
		p.obs.Call(Call{JobID: req.JobID, Status: t.status, ErrorCode: t.errorCode, Class: class.String(), Duration: took})
		if ce := p.log.Check(zap.DebugLevel, "api call"); ce != nil {
			ce.Write(t.ids(zap.Int("attempt", attempt), zap.Int("status", t.status), zap.String("error_code", t.errorCode),
				zap.String("request_id", t.requestID), zap.Duration("duration", took), zap.Stringer("class", class), zap.Error(err))...)
		}

		var wait time.Duration
		hold := false // the wait is a hold (throttle), not a backoff between tries
		switch class {
		case retry.Success:
			if p.cfg.Limiter != nil {
				p.cfg.Limiter.Succeeded(region)
			}
			t.status, t.errorMsg = 200, ""
			t.verified = outcome == OutcomeRecovered && p.cfg.Verify
			p.finish(workCtx, t, outcome, "")
			return
		case retry.ClientError:
			p.deadLetter(workCtx, t, ReasonClientError)
			return
		case retry.Forbidden:
			// One 403 is about the job; a run of them is a missing
			// permission for every job, which pauses instead.
			if jobLevel403 {
				p.deadLetter(workCtx, t, ReasonClientError)
				return
			}
			dead, err := p.gate.forbiddenVerdict(runCtx, region, req.JobID, s)
			if err != nil {
				p.handBack(workCtx, t, 0, "shutdown")
				return
			}
			if dead {
				p.deadLetter(workCtx, t, ReasonClientError)
				return
			}
			p.retried(t, "forbidden_run", 0)
			continue
		case retry.Canceled:
			// Only the drain timeout cancels a call.
			p.handBack(workCtx, t, 0, "drain_timeout")
			return
		case retry.Throttled:
			// Never spends the attempt budget; slows the whole process.
			wait, hold = p.holdWait(b, err), true
			if p.cfg.Limiter != nil {
				p.cfg.Limiter.Throttled(region, retry.RetryAfter(err))
			}
			p.retried(t, "throttled", wait)
		case retry.Unauthorized, retry.Configuration:
			// Credentials or the endpoint are wrong for every job: never
			// dead-letter. The gate paused the pool (fleet-wide); this
			// request waits there without spending its budget and is
			// retried after resume.
			p.retried(t, class.String(), 0)
			continue
		default: // Transient
			if breakerOpen {
				// An outage: wait at the gate without spending the budget.
				p.retried(t, "breaker_open", 0)
				continue
			}
			t.tries++
			w, ok := p.cfg.Backoff.Next(b, err)
			used := t.tries >= p.cfg.TriesPerDelivery || !ok // this delivery's tries
			if p.triesBefore(t)+t.tries >= p.budget() || used && t.n >= p.maxDeliver {
				p.deadLetter(workCtx, t, exhaustedReason(err))
				return
			}
			if used {
				delay := p.cfg.Backoff.NakDelay(t.n, err)
				p.nak(d, delay, "retries_of_delivery_used")
				p.retried(t, "redelivery", delay)
				p.report(t, OutcomeHandedBack, "retries_of_delivery_used")
				return
			}
			wait = w
			p.retried(t, "transient", wait)
		}

		// Wait before the next try, unless shutdown begins: then hand the
		// message back (with the rest of the wait as its delay if nak'd).
		if err := sleep(runCtx, wait); err != nil {
			p.handBack(workCtx, t, wait, "shutdown")
			return
		}
		if hold {
			t.held += wait
		}
	}
}

// retried tells the observer and the call span that the request is tried
// again after wait.
func (p *Pool) retried(t *task, cause string, wait time.Duration) {
	p.obs.Retry(cause, wait)
	t.traceRetry(cause, wait)
}

// recoverCall makes the API call that holds a slot of p.calls. The slot,
// and the gate's probe when this call is one, are released however the call
// ends: a panicking Recoverer must not leak either (the pool would wait
// forever for a slot, or the breaker for a probe's answer). The panic goes
// on to safeHandle, which hands the message back.
func (p *Pool) recoverCall(ctx, workCtx context.Context, req Request, probe probe) (rid string, err error) {
	defer func() {
		<-p.calls
		if r := recover(); r != nil {
			p.gate.record(workCtx, p.flowRegion(req.Region), req.JobID, retry.Canceled, "", probe)
			panic(r)
		}
	}()
	return p.rec.Recover(ctx, req)
}

func (p *Pool) limiterWait(ctx context.Context, region string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.cfg.Limiter == nil {
		return nil
	}
	return p.cfg.Limiter.Wait(ctx, region)
}

// triesBefore counts the tries the request spent before this delivery: the
// exact count carried by a requeued message, plus this message's earlier
// deliveries at their full per-delivery budget (a redelivery only happens
// once a delivery used its tries, or crashed, which counts the same to stay
// bounded).
func (p *Pool) triesBefore(t *task) int {
	return min(t.lin.tries, p.budget()) + int(min(t.n-1, p.maxDeliver))*p.cfg.TriesPerDelivery //nolint:gosec // bounded by MaxDeliver, an int
}

// budget is a request's attempt budget in tries: MaxDeliver ×
// TriesPerDelivery. Throttles, breaker and pause holds do not spend it.
func (p *Pool) budget() int { return int(p.maxDeliver) * p.cfg.TriesPerDelivery } //nolint:gosec // validated, an int

// record keeps the last API answer for logs and the dead letter.
func (t *task) record(requestID string, err error) {
	t.requestID = requestID
	t.status, t.errorCode, t.errorMsg = 0, "", ""
	if err == nil {
		t.status = 200
		return
	}
	var a retry.Answer
	if errors.As(err, &a) {
		t.status = a.HTTPStatus()
		t.errorCode = a.APIErrorCode()
		var rid interface{ APIRequestID() string }
		if errors.As(err, &rid) && rid.APIRequestID() != "" {
			t.requestID = rid.APIRequestID()
		}
		var msg interface{ APIErrorMsg() string }
		if errors.As(err, &msg) {
			t.errorMsg = msg.APIErrorMsg()
			return
		}
	}
	t.errorMsg = err.Error()
}

// holdWait is the wait before retrying a request whose failure does not
// spend its budget (throttle, 401): the API's Retry-After when given (capped
// by the policy), else the next backoff, never "stop".
func (p *Pool) holdWait(b backoff.BackOff, err error) time.Duration {
	if hint := retry.RetryAfter(err); hint > 0 {
		return min(hint, p.cfg.Backoff.MaxRetryAfter)
	}
	if d := b.NextBackOff(); d != backoff.Stop {
		return d
	}
	return p.cfg.Backoff.Max
}

// deadLetter ends the request dead-lettered with reason (finish).
func (p *Pool) deadLetter(ctx context.Context, t *task, reason string) {
	p.finish(ctx, t, OutcomeDeadLettered, reason)
}

func (p *Pool) deadLetterRecord(t *task, reason string) DeadLetter {
	now := time.Now()
	rec := DeadLetter{
		JobID:          t.req.JobID,
		Campaign:       t.req.Campaign,
		Reason:         reason,
		StatusCode:     t.status,
		ErrorCode:      t.errorCode,
		ErrorMsg:       t.errorMsg,
		RequestID:      t.requestID,
		Attempts:       t.calls,
		Deliveries:     t.lin.deliveries + t.n,
		FirstAttemptAt: t.first,
		EnqueuedAt:     t.stored,
		FailedAt:       now.UTC(),
		Worker:         p.cfg.Name,
		TraceID:        t.traceID(),
		SpanID:         t.spanID(),
		Original:       NewOriginal(t.d.Subject(), t.seq, t.d.Header(), t.d.Body()),
	}
	rec.Attempts = p.attempts(t)
	return rec
}

// finish takes the request to its terminal state: it claims the outcome
// (claim.go), stores the claimed records (dead letter, then result event)
// and acks, confirmed by the server. The claim comes first so that a request
// has one outcome whatever fails after it: a delivery that finds another
// outcome claimed (an ack that failed, a requeued copy) stores that one's
// records instead of its own. While the claim cannot be made (the KV is
// unavailable) the delivery keeps its lease and tries again; if a record
// cannot be stored the request is handed back, never acked.
func (p *Pool) finish(ctx context.Context, t *task, kind, reason string) {
	if p.leaseLost(t) {
		return
	}
	c, err := p.claimOutcome(t, kind, reason)
	if err == nil {
		var won bool
		if c, won, err = p.claimHeld(ctx, t, c); err == nil && !won {
			t.logger().Info("outcome claimed already; storing its records and acking",
				zap.String("outcome", c.Outcome), zap.String("reason", c.Reason), zap.String("this_outcome", kind))
		}
	}
	switch {
	case errors.Is(err, errLeaseGone):
		return
	case errors.Is(err, errClaimUnreadable):
		// Waiting does not mend it: the request goes back with a delay,
		// and the operator sees the error.
		t.logger().Error("outcome not claimed; handing the request back", zap.String("outcome", kind), zap.Error(err))
		p.nak(t.d, p.cfg.Backoff.NakDelay(1, nil), "claim_failed")
		p.report(t, OutcomeHandedBack, "claim_failed")
		return
	case err != nil:
		// The drain timeout ended the wait for the KV: hand the request
		// back (requeued, no delivery spent); its copy reads the claim.
		t.logger().Error("outcome not claimed before the drain timeout; handing the request back", zap.String("outcome", kind), zap.Error(err))
		p.handBack(ctx, t, 0, "claim_failed")
		return
	}
	p.settle(ctx, t, c)
}

// settle stores the claimed outcome's records and acks the delivery.
func (p *Pool) settle(ctx context.Context, t *task, c Claim) {
	if failed, err := p.publishClaimed(ctx, t, c); err != nil {
		t.logger().Error("outcome not stored; handing the request back", zap.String("outcome", c.Outcome), zap.Error(err))
		p.nak(t.d, p.cfg.Backoff.NakDelay(1, nil), failed)
		p.report(t, OutcomeHandedBack, failed)
		return
	}
	if c.Outcome == OutcomeDeadLettered {
		t.logger().Warn("dead-lettered", zap.String("reason", c.Reason), zap.Int("status", t.status),
			zap.String("error_code", t.errorCode), zap.String("error_msg", t.errorMsg),
			zap.String("request_id", t.requestID), zap.Int("attempt", p.attempts(t)))
	}
	if p.leaseLost(t) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	if err := t.d.Ack(actx); err != nil {
		// The request will come back (or reach the sweep) and find its
		// claim: this costs a repeat of the records, never a second outcome.
		t.logger().Error("ack not confirmed; the request will be redelivered", zap.String("outcome", c.Outcome), zap.Error(err))
		p.report(t, OutcomeAckFailed, c.Outcome)
		return
	}
	if c.Outcome == OutcomeRecovered {
		// Sampled: Check decides before any per-request field is built.
		if ce := p.log.Check(zap.InfoLevel, "recovered"); ce != nil {
			ce.Write(t.ids(zap.Int("status", t.status), zap.String("request_id", t.requestID),
				zap.Int("attempt", p.attempts(t)), zap.Duration("duration", time.Since(t.start)))...)
		}
	}
	p.report(t, c.Outcome, c.Reason)
}

// leaseLost reports (and counts, logs and reports once) a delivery whose
// heartbeats did not reach the server for AckWait or longer, now or at any
// time since it was fetched: the server may have handed it to another
// worker, so acting on it now could make a second terminal state. A link
// that comes back after such a gap does not give the lease back. Dropping
// it is safe: the other delivery finishes.
func (p *Pool) leaseLost(t *task) bool {
	silent := time.Duration(p.mono() - t.lastBeat.Load())
	if silent < p.cfg.AckWait && !t.leaseGone.Load() {
		return false
	}
	p.leaseDrops.Add(1)
	t.logger().Warn("lease lost: no heartbeat reached NATS for longer than AckWait; leaving the request to its new owner",
		zap.Duration("silent", silent), zap.Duration("ack_wait", p.cfg.AckWait))
	p.report(t, OutcomeLeaseLost, "")
	return true
}

// resultRecord is the request's result event, marshalled.
func (p *Pool) resultRecord(t *task, kind, reason string) ([]byte, error) {
	r := Result{
		JobID: t.req.JobID, Outcome: kind, Reason: reason, Status: t.status, ErrorCode: t.errorCode,
		RequestID: t.requestID, Attempts: p.attempts(t), Deliveries: t.lin.deliveries + t.n,
		DurationMS: time.Since(t.start).Milliseconds(), StreamSeq: t.seq, At: time.Now().UTC(), Worker: p.cfg.Name,
		TraceID: t.traceID(), SpanID: t.spanID(), Campaign: t.req.Campaign, Verified: t.verified,
	}
	return r.Marshal()
}

// attempts counts the request's API calls across deliveries (earlier
// deliveries at their full budget); 0 when no call was made.
func (p *Pool) attempts(t *task) int {
	if t.calls == 0 {
		return 0
	}
	return p.triesBefore(t) + t.calls
}

func (p *Pool) nak(d Delivery, delay time.Duration, cause string) {
	if err := d.Nak(delay); err != nil {
		// Without the nak the server redelivers after AckWait.
		p.log.Warn("nak failed; the request comes back after AckWait", zap.Uint64("stream_seq", d.StreamSeq()),
			zap.String("cause", cause), zap.Error(err))
	}
}

func (p *Pool) report(t *task, kind, reason string) {
	p.traceOutcome(t, kind, reason)
	o := Outcome{
		Kind: kind, Reason: reason, JobID: t.req.JobID, StreamSeq: t.seq, Delivery: t.n,
		Status: t.status, RequestID: t.requestID, Attempts: p.attempts(t),
		Duration: time.Since(t.start),
	}
	if kind == OutcomeDeadLettered {
		o.HeadersRefused = refusedHeaders(t.d.Header())
	}
	p.obs.Outcome(o)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
