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

// Replay replays the dead letters that match f (which must select
// something narrower than everything) stored at or below sequence upTo
// (0 = any), as `worker dlq replay` does. selected is called once with the
// number selected, progress with the number whose fate is known.
func (s *Streams) Replay(ctx context.Context, f Filter, upTo uint64, selected func(int), progress func(int)) (ReplaySummary, error) {
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
	if upTo > 0 {
		n := 0
		for _, seq := range seqs {
			if seq <= upTo {
				seqs[n] = seq
				n++
			}
		}
		seqs = seqs[:n]
	}
	if selected != nil {
		selected(len(seqs))
	}
	return Replay(ctx, s.Conn, dlq, seqs, ReplayConfig{Filter: &f, Progress: progress, Problems: s.Problems})
}
