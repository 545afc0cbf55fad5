package admin

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Group is the dead letters of one reason and error code.
type Group struct {
	Reason string `json:"reason"`
	// ErrorCode is the API's error code, "" when there was none (invalid
	// requests, transport errors).
	ErrorCode string `json:"error_code"`
	Count     int    `json:"count"`
	// Statuses counts the group's HTTP statuses ("0" = no API answer).
	Statuses map[string]int `json:"statuses"`
	// ErrorMsg is the latest dead letter's error message.
	ErrorMsg      string    `json:"error_msg,omitempty"`
	FirstFailedAt time.Time `json:"first_failed_at,omitzero"`
	LastFailedAt  time.Time `json:"last_failed_at,omitzero"`
	// Samples are the group's latest dead letters, newest first.
	Samples []Sample `json:"samples"`
}

// Sample is one dead letter of a Group, without its original message.
type Sample struct {
	Seq        uint64    `json:"dlq_seq"`
	JobID      string    `json:"job_id,omitempty"`
	StatusCode int       `json:"status_code,omitempty"`
	ErrorMsg   string    `json:"error_msg,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	FailedAt   time.Time `json:"failed_at,omitzero"`
}

// Snapshot is Status and the dead letters grouped by reason and error code,
// from one scan of the dead-letter stream.
type Snapshot struct {
	Status Status `json:"status"`
	// Groups are largest first.
	Groups []Group `json:"groups"`
	// DLQLastSeq is the dead-letter stream's last sequence when it was
	// scanned: replaying a group as it was seen goes up to it.
	DLQLastSeq uint64 `json:"dlq_last_seq"`
	// Stale is set when the dead-letter stream changed since its last scan
	// but a rescan was put off (see SnapshotConfig.RescanEvery): Status.DLQ's
	// counts by reason and Groups are from ScannedAt.
	Stale     bool      `json:"stale,omitempty"`
	ScannedAt time.Time `json:"scanned_at"`
	// ScanTook is how long the last scan of the dead letters took.
	ScanTook time.Duration `json:"-"`

	dlq dlqState
}

// dlqState identifies the set of messages in a stream: appending moves
// last, removing lowers msgs (or moves first), so an equal state is an
// equal set.
type dlqState struct{ first, last, msgs uint64 }

// SnapshotConfig tunes TakeSnapshot.
type SnapshotConfig struct {
	// ResultStream is shown when it exists; "" = not shown.
	ResultStream string
	// Samples is the most dead letters kept per group. Default 3.
	Samples int
	// RescanEvery bounds how often a changed dead-letter stream is scanned
	// again: at most once per max(RescanEvery, 20 × the last scan's
	// duration), so a page polled every second over a large stream costs a
	// bounded share of NATS. Default 1s.
	RescanEvery time.Duration
	// Now is the clock. nil = time.Now.
	Now func() time.Time
}

// TakeSnapshot reads the streams as CollectStatus does. The dead letters
// are scanned only when prev is nil or the dead-letter stream changed since
// prev (and the rescan is not put off); otherwise prev's counts by reason
// and groups are kept.
func TakeSnapshot(ctx context.Context, conn *queue.Conn, cfg SnapshotConfig, prev *Snapshot) (*Snapshot, error) {
	if cfg.Samples <= 0 {
		cfg.Samples = 3
	}
	if cfg.RescanEvery <= 0 {
		cfg.RescanEvery = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, dinfo, err := collectQueue(ctx, conn, cfg.ResultStream)
	if err != nil {
		return nil, err
	}
	now := cfg.Now()
	s := &Snapshot{Status: st, dlq: dlqState{dinfo.State.FirstSeq, dinfo.State.LastSeq, dinfo.State.Msgs}}
	if prev != nil {
		unchanged := prev.dlq == s.dlq
		putOff := now.Sub(prev.ScannedAt) < max(cfg.RescanEvery, 20*prev.ScanTook)
		if unchanged || putOff {
			s.Status.DLQ.ByReason = prev.Status.DLQ.ByReason
			s.Groups, s.DLQLastSeq, s.ScannedAt, s.ScanTook = prev.Groups, prev.DLQLastSeq, prev.ScannedAt, prev.ScanTook
			s.Stale = !unchanged
			if !unchanged {
				s.dlq = prev.dlq // rescan next time it is allowed
			}
			return s, nil
		}
	}
	byReason := map[string]int{}
	groups := map[[2]string]*Group{}
	var last uint64
	_, _, err = Scan(ctx, conn, &Filter{}, 0, func(r Record) error {
		last = r.Seq
		reason := r.reason()
		byReason[reason]++
		key := [2]string{reason, r.ErrorCode}
		g := groups[key]
		if g == nil {
			g = &Group{Reason: reason, ErrorCode: r.ErrorCode, Statuses: map[string]int{}, FirstFailedAt: r.FailedAt}
			groups[key] = g
		}
		g.Count++
		g.Statuses[strconv.Itoa(r.StatusCode)]++
		if r.FailedAt.Before(g.FirstFailedAt) {
			g.FirstFailedAt = r.FailedAt
		}
		if !r.FailedAt.Before(g.LastFailedAt) {
			g.LastFailedAt = r.FailedAt
			g.ErrorMsg = r.ErrorMsg
			if r.Unreadable != "" {
				g.ErrorMsg = r.Unreadable
			}
		}
		// Stream order is failure order: keep the latest few, newest first.
		g.Samples = append([]Sample{{
			Seq: r.Seq, JobID: r.JobID, StatusCode: r.StatusCode, ErrorMsg: r.ErrorMsg,
			RequestID: r.RequestID, FailedAt: r.FailedAt,
		}}, g.Samples[:min(len(g.Samples), cfg.Samples-1)]...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Status.DLQ.ByReason = byReason
	s.DLQLastSeq = max(last, dinfo.State.LastSeq)
	s.ScannedAt = now
	s.ScanTook = cfg.Now().Sub(now)
	s.Groups = make([]Group, 0, len(groups))
	for _, g := range groups {
		s.Groups = append(s.Groups, *g)
	}
	slices.SortFunc(s.Groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.ErrorCode, b.ErrorCode))
	})
	return s, nil
}
