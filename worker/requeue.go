package worker

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Requeuer publishes a request again at the back of the request stream and
// returns once the server has stored it; msgID makes a repeat a no-op.
// queue.Conn implements it (through internal/wire).
type Requeuer interface {
	Requeue(ctx context.Context, subject, msgID string, header map[string][]string, body []byte) error
}

// The headers a requeued request carries: where it came from and what it
// has spent. They are the worker's own: never kept in dead letters (so a
// replay starts afresh) and never set by producers.
const (
	// HeaderOrigin names the request's first message, "SEQ-STOREDNANOS":
	// its dead letter and result event keep that identity (and their
	// message ids) however often the request is requeued.
	HeaderOrigin = "Codearts-Recover-Origin"
	// HeaderTries is the number of API tries (transient failures) the
	// request spent before this message.
	HeaderTries = "Codearts-Recover-Tries"
	// HeaderDeliveries is the number of deliveries of earlier messages of
	// the request.
	HeaderDeliveries = "Codearts-Recover-Deliveries"
)

// lineage is what a request carries over from its earlier messages.
type lineage struct {
	seq        uint64    // the first message's stream sequence
	stored     time.Time // and its store time
	tries      int       // tries spent before this message
	deliveries uint64    // deliveries of earlier messages
}

// lineageOf reads a message's lineage from its headers; a message without
// them (as every producer sends) is its own origin. Malformed values, and
// an origin that is not older than the message, are ignored.
func lineageOf(header map[string][]string, seq uint64, stored time.Time) lineage {
	l := lineage{seq: seq, stored: stored}
	v, ok := headerValue(header, HeaderOrigin)
	if !ok {
		return l // not a requeued message: the common case, two lookups
	}
	s, ns, ok := strings.Cut(v, "-")
	oseq, err1 := strconv.ParseUint(s, 10, 64)
	onanos, err2 := strconv.ParseInt(ns, 10, 64)
	// An origin is older than the message carrying it; anything else is
	// not ours and is ignored.
	if ok && err1 == nil && err2 == nil && oseq > 0 && oseq < seq && onanos <= stored.UnixNano() {
		l.seq, l.stored = oseq, time.Unix(0, onanos)
	}
	if v, ok := headerValue(header, HeaderTries); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			l.tries = n
		}
	}
	if v, ok := headerValue(header, HeaderDeliveries); ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			l.deliveries = n
		}
	}
	return l
}

// handBack returns a request that has not reached a terminal state to the
// queue. With a Requeuer, it is published again at the back of the stream
// carrying the tries it spent, and this message is acked: a shutdown,
// scale-in or drain that hands back a request costs it nothing but the
// tries it really made (JetStream's delivery count cannot tell a hand-back
// from a failure, and MaxDeliver would end the request after a few rolling
// restarts). Without one, or if the requeue fails, the message is nak'd
// (and that delivery counts as a full one).
func (p *Pool) handBack(ctx context.Context, t *task, delay time.Duration, cause string) {
	if p.cfg.Requeue != nil {
		err := p.requeue(ctx, t)
		if err == nil {
			p.report(t, OutcomeHandedBack, cause)
			return
		}
		t.logger().Warn("requeue failed; handing the request back with a nak (it counts as a delivery)",
			zap.String("cause", cause), zap.Error(err))
	}
	p.nak(t.d, delay, cause)
	p.report(t, OutcomeHandedBack, cause)
}

// requeueTimeout bounds a requeue's publish and ack: a shutdown must not
// hang on a NATS that stopped answering.
const requeueTimeout = 5 * time.Second

func (p *Pool) requeue(ctx context.Context, t *task) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requeueTimeout)
	defer cancel()
	header := make(map[string][]string, len(t.d.Header())+3)
	maps.Copy(header, t.d.Header())
	delete(header, "Nats-Msg-Id") // the copy gets its own, below
	origin := strconv.FormatUint(t.seq, 10) + "-" + strconv.FormatInt(t.stored.UnixNano(), 10)
	header[HeaderOrigin] = []string{origin}
	header[HeaderTries] = []string{strconv.Itoa(p.triesBefore(t) + t.tries)}
	header[HeaderDeliveries] = []string{strconv.FormatUint(t.lin.deliveries+t.n, 10)}
	// One id per message handed back: a crash between the publish and the
	// ack, then a second hand-back of the same message, makes no second copy.
	msgID := "requeue-" + origin + "-" + strconv.FormatUint(t.d.StreamSeq(), 10)
	if err := p.cfg.Requeue.Requeue(ctx, t.d.Subject(), msgID, header, t.d.Body()); err != nil {
		return err
	}
	if err := t.d.Ack(ctx); err != nil {
		// Both messages may now be worked on; the result event and dead
		// letter ids derive from the origin, so the stream keeps one of each
		// within its duplicate window.
		t.logger().Warn("requeued but the ack failed: the request may be worked on twice", zap.Error(err))
	}
	t.traceEvent("requeued")
	return nil
}
