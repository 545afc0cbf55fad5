package worker

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// StrandedMsg is a request that reached the consumer's MaxDeliver without a
// terminal state, e.g. because it crashed the worker on every delivery.
type StrandedMsg struct {
	Subject    string
	StreamSeq  uint64
	Header     map[string][]string
	Body       []byte
	Stored     time.Time
	Deliveries uint64
	// Gone: already dead-lettered and deleted by an interrupted sweep.
	Gone bool
	// Delete removes the request from the request stream.
	Delete func(ctx context.Context) error
	// Done acknowledges the advisory; Retry hands it back for later.
	Done  func(ctx context.Context) error
	Retry func(delay time.Duration) error
}

// StrandedSource yields stranded requests (from the server's
// MAX_DELIVERIES advisories).
type StrandedSource interface {
	NextStranded(ctx context.Context) (StrandedMsg, error)
}

// sweep dead-letters stranded requests with reason max_deliveries, then
// deletes them from the request stream, until ctx ends. It claims the
// outcome first, as a delivery does: a request whose outcome is claimed
// already (recovered, its ack failed on the last delivery) keeps it. The
// dead letter's id is the one a regular dead letter of that request would
// have, so a request is never dead-lettered twice.
func (p *Pool) sweep(ctx context.Context, src StrandedSource) {
	fails := 0
	for {
		s, err := src.NextStranded(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fails++
			p.log.Warn("reading max-deliveries advisories failed", zap.Error(err))
			if sleep(ctx, min(time.Duration(fails)*time.Second, 30*time.Second)) != nil {
				return
			}
			continue
		}
		fails = 0
		if err := p.settleStranded(ctx, s); err != nil {
			p.log.Error("stranded request not dead-lettered yet; retrying", zap.Uint64("stream_seq", s.StreamSeq), zap.Error(err))
			if rerr := s.Retry(5 * time.Second); rerr != nil {
				p.log.Warn("advisory nak failed; it comes back after its AckWait", zap.Error(rerr))
			}
		}
	}
}

func (p *Pool) settleStranded(ctx context.Context, s StrandedMsg) error {
	if s.Gone {
		return s.Done(ctx)
	}
	lin := lineageOf(s.Header, s.StreamSeq, s.Stored)
	t := &task{seq: lin.seq, stored: lin.stored, lin: lin, n: s.Deliveries, start: time.Now(), d: strandedDelivery{s}}
	t.lastBeat.Store(p.mono() + int64(24*time.Hour)) // not leased: never "lost"
	if req, err := Decode(s.Body, s.Header, p.cfg.Decode); err == nil {
		t.req = req
	}
	t.errorMsg = "the request reached the consumer's delivery limit without finishing (did it crash the worker?)"
	t.base = p.log
	p.startStranded(ctx, t)
	defer p.endStranded(t)
	t.traceDecoded()
	// The request may have its outcome already (recovered, then its ack
	// failed on the last delivery): the claim keeps that one.
	c, err := p.claimOutcome(t, OutcomeDeadLettered, ReasonMaxDeliveries)
	if err != nil {
		t.traceFailed(err)
		return err
	}
	c, won, err := p.claim(ctx, t, c)
	if err != nil {
		t.traceFailed(err)
		return err
	}
	if _, err := p.publishClaimed(ctx, t, c); err != nil {
		t.traceFailed(err)
		return err
	}
	if err := s.Delete(ctx); err != nil {
		t.traceFailed(err)
		return err
	}
	switch {
	case !won:
		t.logger().Info("stranded request had its outcome already; its records are stored, the message deleted",
			zap.String("outcome", c.Outcome), zap.String("reason", c.Reason))
	case c.Outcome == OutcomeDeadLettered:
		t.logger().Warn("dead-lettered", zap.String("reason", c.Reason))
	}
	p.report(t, c.Outcome, c.Reason)
	return s.Done(ctx)
}

// strandedDelivery lets the dead-letter and result code read a stranded
// request like a delivery; it is never acked or nak'd.
type strandedDelivery struct{ s StrandedMsg }

func (d strandedDelivery) Body() []byte                { return d.s.Body }
func (d strandedDelivery) Header() map[string][]string { return d.s.Header }
func (d strandedDelivery) Subject() string             { return d.s.Subject }
func (d strandedDelivery) StreamSeq() uint64           { return d.s.StreamSeq }
func (d strandedDelivery) NumDelivered() uint64        { return d.s.Deliveries }
func (d strandedDelivery) Timestamp() time.Time        { return d.s.Stored }
func (d strandedDelivery) Ack(context.Context) error   { return nil }
func (d strandedDelivery) Nak(time.Duration) error     { return nil }
func (d strandedDelivery) InProgress() error           { return nil }
