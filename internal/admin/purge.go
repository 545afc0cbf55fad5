package admin

import (
	"context"
	"errors"
	"math"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// PurgePlan is what a purge deletes, fixed before the operator confirms it:
// every dead letter stored so far (no filter: messages that arrive meanwhile
// are kept), or the ones a filter selected.
type PurgePlan struct {
	// DLQ is the dead-letter stream.
	DLQ *queue.Stream
	// Count is how many dead letters go.
	Count int
	// all: purge up to lastSeq; else delete seqs.
	all     bool
	lastSeq uint64
	seqs    []uint64
}

// PlanPurge reads what a purge with f would delete (an empty filter: all).
func PlanPurge(ctx context.Context, conn *queue.Conn, f *Filter) (PurgePlan, error) {
	dlq, info, err := RequireStream(ctx, conn, conn.Config().DLQStream, "dlq-stream")
	if err != nil {
		return PurgePlan{}, err
	}
	if f.Empty() {
		return PurgePlan{DLQ: dlq, Count: int(min(info.State.Msgs, math.MaxInt32)), all: true, lastSeq: info.State.LastSeq}, nil
	}
	seqs, err := Select(ctx, conn, f, 0)
	if err != nil {
		return PurgePlan{}, err
	}
	return PurgePlan{DLQ: dlq, Count: len(seqs), seqs: seqs}, nil
}

// Purge deletes what the plan names and returns how many went: a dead letter
// already gone (replayed, expired) counts as purged; on an error, those
// deleted before it.
func Purge(ctx context.Context, p PurgePlan) (purged int, err error) {
	if p.all {
		if err := p.DLQ.Purge(ctx, p.lastSeq+1); err != nil {
			return 0, err
		}
		return p.Count, nil
	}
	for _, seq := range p.seqs {
		if err := p.DLQ.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, queue.ErrMsgNotFound) {
			return purged, err
		}
		purged++
	}
	return purged, nil
}
