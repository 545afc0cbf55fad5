package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// ReplayOfHeader links a replayed request to the dead letter it came from
// (the dead letter's sequence in the dead-letter stream).
const ReplayOfHeader = "Recover-Replay-Of"

// ReplaySummary is what a replay did; its JSON is `worker dlq replay
// --json` and is stable for scripts.
type ReplaySummary struct {
	Matched int `json:"matched"`
	// Replayed counts requests newly stored in the request stream and
	// removed from the dead-letter stream.
	Replayed int `json:"replayed"`
	// AlreadyReplayed counts dead letters an earlier, interrupted replay
	// had already stored (the request stream said duplicate); they are
	// removed now.
	AlreadyReplayed int `json:"already_replayed"`
	// Failed counts dead letters left in place: unreadable, or their replay
	// was not acknowledged, or they could not be removed after it.
	Failed int `json:"failed"`
	// Gone counts dead letters that disappeared meanwhile (another replay,
	// a purge, expiry).
	Gone int `json:"gone"`
	// NotReplayable counts dead letters whose original body was too large
	// to keep (only its size, SHA-256 and a prefix are): left in place,
	// never replayed as a prefix.
	NotReplayable int  `json:"not_replayable"`
	Interrupted   bool `json:"interrupted"`
}

// ReplayConfig tunes Replay. Zero values mean the defaults.
type ReplayConfig struct {
	// Filter is applied again to each dead letter as it is read (it may
	// have changed since it was selected). nil = every one. Parsed already.
	Filter *Filter
	// Window is the most replays published but not yet acknowledged.
	// Default 64.
	Window int
	// Rate is the most replays per second. 0 = no limit.
	Rate float64
	// Progress, when set, is called with the number of replays whose fate
	// is known, from the publisher's goroutine.
	Progress func(done int)
	// Problems receives one line per dead letter not replayed or not
	// removed. nil = discarded. It is written from two goroutines; Replay
	// serialises its own writes.
	Problems io.Writer
	// BeforeRemove, when set (by tests), runs after a replay's publish ack
	// and before its dead letter is removed; an error leaves the dead letter
	// in place, as a crash at that moment would.
	BeforeRemove func(dlqSeq uint64) error
}

// Select returns the sequences of the dead letters that match f, in stream
// order; limit > 0 keeps the first limit.
func Select(ctx context.Context, conn *queue.Conn, f *Filter, limit int) ([]uint64, error) {
	var seqs []uint64
	_, _, err := Scan(ctx, conn, f, limit, func(r Record) error {
		seqs = append(seqs, r.Seq)
		return nil
	})
	return seqs, err
}

// Replay republishes the original request of each dead letter at seqs to
// the request subject (body and headers byte for byte, with
// Recover-Replay-Of and a Nats-Msg-Id derived from the dead letter) and
// removes each dead letter only after the request stream acknowledged its
// replay. A dead letter whose original body was not kept whole is never
// replayed (NotReplayable): its prefix is not the request. When ctx ends it
// stops sending (Interrupted), and still removes the dead letters whose
// replays were acknowledged. The error is a failure to read or send, not
// ctx's.
func Replay(ctx context.Context, conn *queue.Conn, dlq *queue.Stream, seqs []uint64, cfg ReplayConfig) (ReplaySummary, error) {
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.Filter == nil {
		cfg.Filter = &Filter{}
	}
	problems, shared := cfg.Problems.(*LockedWriter)
	if !shared {
		problems = &LockedWriter{W: cfg.Problems}
	}
	qcfg := conn.Config()
	client, err := producer.New(conn.NC, producer.Config{Subject: qcfg.Subject, Stream: qcfg.Stream})
	if err != nil {
		return ReplaySummary{}, err
	}
	// The batch's goroutine owns these until Close returns.
	var replayed, already, notDone, acked int
	// Removals after the context ends must still happen: a replayed dead
	// letter left in place is only a duplicate on rerun, but cleaner
	// removed now.
	detached := context.WithoutCancel(ctx)
	// OnResult runs before the window moves on: each removal follows its
	// replay's ack.
	batch, err := client.NewBatch(producer.BatchConfig{
		Window: cfg.Window,
		OnResult: func(r producer.BatchResult) {
			acked++
			if cfg.Progress != nil {
				defer cfg.Progress(acked)
			}
			seq := r.Ref
			if r.Err != nil {
				notDone++
				fmt.Fprintf(problems, "dead letter %d: not replayed: %v\n", seq, r.Err)
				return
			}
			if err := remove(detached, dlq, seq, cfg.BeforeRemove); err != nil {
				notDone++
				fmt.Fprintf(problems, "dead letter %d: replayed (stream seq %d) but not removed: %v\n", seq, r.Seq, err)
				return
			}
			if r.Duplicate {
				already++
			} else {
				replayed++
			}
		},
	})
	if err != nil {
		return ReplaySummary{}, err
	}
	limiter := retry.PerSecond(cfg.Rate)
	var (
		sendErr                                error
		matched, gone, unusable, notReplayable int
		reached                                = true
	)
	for _, seq := range seqs {
		if ctx.Err() != nil || (limiter != nil && limiter.Wait(ctx) != nil) {
			reached = false
			break
		}
		r, ok, err := Fetch(ctx, dlq, seq)
		if err != nil {
			reached = false
			if ctx.Err() == nil {
				sendErr = err
			}
			break
		}
		if !ok {
			gone++
			continue
		}
		if !cfg.Filter.Match(&r) {
			continue
		}
		if r.Unreadable == "" && !r.Original.Replayable() {
			matched++
			notReplayable++
			fmt.Fprintf(problems, "dead letter %d: %s\n", seq, NotReplayableText(&r))
			continue
		}
		body, err := r.Original.Bytes()
		if err != nil || r.Unreadable != "" {
			matched++
			unusable++
			fmt.Fprintf(problems, "dead letter %d: cannot replay: %s\n", seq, r.Unreadable+errText(err))
			continue
		}
		h := ReplayHeader(r.Original.Headers, seq)
		r.ContinueTrace(h) // the replay joins the request's trace
		m := producer.Message{JobID: r.JobID, MsgID: ReplayMsgID(seq, r.StoredAt), Header: h, Data: body}
		if err := batch.Publish(ctx, m, seq); err != nil {
			reached = false
			if ctx.Err() == nil {
				sendErr = err
			}
			break
		}
		matched++
	}
	batch.Close()
	sum := ReplaySummary{
		Matched: matched, Replayed: replayed, AlreadyReplayed: already,
		Failed: notDone + unusable, Gone: gone, NotReplayable: notReplayable, Interrupted: !reached && sendErr == nil,
	}
	return sum, sendErr
}

// NotReplayableText says why a dead letter whose original body was not
// kept is not replayed, with what identifies the body and what to do.
func NotReplayableText(r *Record) string {
	o := &r.Original
	s := fmt.Sprintf("not replayable: body truncated (%d bytes, sha256 %s)", o.BodySize, o.BodySHA256)
	if r.JobID != "" {
		s += "; its job " + r.JobID + " can be enqueued again"
	}
	return s
}

// remove deletes a replayed dead letter; one already gone is fine.
func remove(ctx context.Context, dlq *queue.Stream, seq uint64, hook func(uint64) error) error {
	if hook != nil {
		if err := hook(seq); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := dlq.DeleteMsg(ctx, seq)
	if errors.Is(err, queue.ErrMsgNotFound) {
		return nil
	}
	return err
}

// ReplayMsgID is the Nats-Msg-Id of the replay of the dead letter stored at
// seq at time stored: the same on every rerun, so the request stream drops a
// second replay within its duplicate window.
func ReplayMsgID(seq uint64, stored time.Time) string {
	return fmt.Sprintf("replay-%d-%d", seq, stored.UnixNano())
}

// ReplayHeader is the original message's headers without JetStream's own
// (Nats-Msg-Id, Nats-Expected-*…), which belong to the first publish, plus
// the link to the dead letter.
func ReplayHeader(orig map[string][]string, seq uint64) nats.Header {
	h := make(nats.Header, len(orig)+1)
	for k, v := range orig {
		if len(k) >= 5 && strings.EqualFold(k[:5], "nats-") {
			continue
		}
		h[k] = slices.Clone(v)
	}
	h.Set(ReplayOfHeader, strconv.FormatUint(seq, 10))
	return h
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// LockedWriter serialises writes to W from several goroutines (a replay's
// publisher and its caller); a nil W discards.
type LockedWriter struct {
	mu sync.Mutex
	W  io.Writer
}

// Write writes p to W under the lock.
func (l *LockedWriter) Write(p []byte) (int, error) {
	if l.W == nil {
		return len(p), nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.W.Write(p)
}
