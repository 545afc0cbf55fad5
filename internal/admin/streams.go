package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Streams is the worker's streams on one connection, as the status page
// reads and repairs them.
type Streams struct {
	// Conn is the connection, with the stream names. Required.
	Conn *queue.Conn
	// Snapshots tunes Snapshot.
	Snapshots SnapshotConfig
	// Problems receives one line per dead letter a replay could not
	// replay or remove. nil = discarded.
	Problems io.Writer
}

// Snapshot is TakeSnapshot on s.Conn.
func (s *Streams) Snapshot(ctx context.Context, prev *Snapshot) (*Snapshot, error) {
	return TakeSnapshot(ctx, s.Conn, s.Snapshots, prev)
}

// ReplayBounds bound a replay from the status page.
type ReplayBounds struct {
	// UpTo: only dead letters stored at or below this sequence (0 = any).
	UpTo uint64
	// Max: at most this many, the oldest first (0 = every one selected).
	Max int
	// Rate: at most this many replays per second (0 = no limit).
	Rate float64
}

// Replay replays the dead letters that match f (which must select
// something narrower than everything) within b, as `worker dlq replay`
// does. selected is called once with the number selected, progress with
// the number whose fate is known.
func (s *Streams) Replay(ctx context.Context, f Filter, b ReplayBounds, selected func(int), progress func(int)) (ReplaySummary, error) {
	if f.Empty() {
		return ReplaySummary{}, errors.New("replay: a filter is required")
	}
	if err := f.Parse(time.Now()); err != nil {
		return ReplaySummary{}, err
	}
	cfg := s.Conn.Config()
	dlq, _, err := RequireStream(ctx, s.Conn, cfg.DLQStream, "dlq-stream")
	if err != nil {
		return ReplaySummary{}, err
	}
	seqs, err := Select(ctx, s.Conn, &f, 0)
	if err != nil {
		return ReplaySummary{}, fmt.Errorf("select dead letters: %w", err)
	}
	if b.UpTo > 0 {
		n := 0
		for _, seq := range seqs {
			if seq <= b.UpTo {
				seqs[n] = seq
				n++
			}
		}
		seqs = seqs[:n]
	}
	if b.Max > 0 && len(seqs) > b.Max {
		seqs = seqs[:b.Max]
	}
	if selected != nil {
		selected(len(seqs))
	}
	return Replay(ctx, s.Conn, dlq, seqs, ReplayConfig{Filter: &f, Rate: b.Rate, Progress: progress, Problems: s.Problems})
}
