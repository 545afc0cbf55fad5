package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Reasons are the dead-letter reasons, in the order they are listed.
var Reasons = []string{
	worker.ReasonClientError, worker.ReasonInvalidRequest, worker.ReasonRetriesExhausted, worker.ReasonMaxDeliveries, worker.ReasonNotRecovered,
}

// Record is a dead letter with its place in the dead-letter stream.
type Record struct {
	Seq uint64 `json:"dlq_seq"`
	// StoredAt is when the dead-letter stream stored it (failed_at is
	// nearly the same, and in the record).
	StoredAt time.Time `json:"-"`
	worker.DeadLetter
	// Unreadable says why the stored message is not a dead-letter record,
	// and Raw is what is stored instead.
	Unreadable string `json:"unreadable,omitempty"`
	Raw        string `json:"raw,omitempty"`
}

// DecodeRecord reads a stored dead letter; a message that is not a
// dead-letter record comes back with Unreadable set.
func DecodeRecord(m queue.StoredMsg) Record {
	r := Record{Seq: m.Seq, StoredAt: m.Time.UTC()}
	if err := json.Unmarshal(m.Data, &r.DeadLetter); err != nil {
		r.DeadLetter = worker.DeadLetter{}
		r.Unreadable = "not a dead-letter record: " + err.Error()
		r.Raw = strings.ToValidUTF8(string(m.Data), "\uFFFD")
	}
	return r
}

func (r *Record) reason() string {
	if r.Unreadable != "" {
		return Unreadable
	}
	return r.Reason
}

// Fetch reads one dead letter; ok is false when it is gone.
func Fetch(ctx context.Context, dlq *queue.Stream, seq uint64) (r Record, ok bool, err error) {
	m, err := dlq.GetMsg(ctx, seq)
	if errors.Is(err, queue.ErrMsgNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	return DecodeRecord(m), true, nil
}

// Filter selects dead letters; every given filter must match, and a filter
// given several values matches any of them. Parse it before Match.
type Filter struct {
	// Reasons: any of Reasons.
	Reasons []string `json:"reasons,omitempty"`
	// Statuses: HTTP statuses ("404"), classes ("4xx"), "0" for no API
	// answer.
	Statuses []string `json:"statuses,omitempty"`
	// ErrorCodes: the API's error codes, any case; "" matches records
	// without one.
	ErrorCodes []string `json:"error_codes,omitempty"`
	JobIDs     []string `json:"job_ids,omitempty"`
	// Since and Until: RFC 3339, a date (UTC), or an age before now (90m,
	// 24h, 7d); Since inclusive, Until exclusive, on failed_at.
	Since string `json:"since,omitempty"`
	Until string `json:"until,omitempty"`

	sinceT, untilT time.Time
	status         map[int]bool // exact statuses
	class          map[int]bool // 4 for 4xx…
}

// Parse checks the filter and reads its times relative to now; the error
// names the offending field as its flag.
func (f *Filter) Parse(now time.Time) error {
	for _, r := range f.Reasons {
		if !slices.Contains(Reasons, r) {
			return fmt.Errorf("reason: %q is not one of %s", r, strings.Join(Reasons, ", "))
		}
	}
	f.status, f.class = map[int]bool{}, map[int]bool{}
	for _, s := range f.Statuses {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) == 3 && strings.HasSuffix(s, "xx") && s[0] >= '1' && s[0] <= '5' {
			f.class[int(s[0]-'0')] = true
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 599 {
			return fmt.Errorf("status: %q is not an HTTP status (404) or class (4xx)", s)
		}
		f.status[n] = true
	}
	var err error
	if f.sinceT, err = ParseWhen(f.Since, now); err != nil {
		return fmt.Errorf("since: %w", err)
	}
	if f.untilT, err = ParseWhen(f.Until, now); err != nil {
		return fmt.Errorf("until: %w", err)
	}
	if !f.sinceT.IsZero() && !f.untilT.IsZero() && !f.sinceT.Before(f.untilT) {
		return errors.New("since: must be before --until")
	}
	return nil
}

// ParseWhen reads a point in time: RFC 3339, a date (UTC), or an age
// before now (90m, 24h, 7d). "" is the zero time.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02) or an age (90m, 24h, 7d)", s)
}

// Empty reports whether the filter selects everything.
func (f *Filter) Empty() bool {
	return len(f.Reasons)+len(f.Statuses)+len(f.ErrorCodes)+len(f.JobIDs) == 0 && f.Since == "" && f.Until == ""
}

// Match reports whether r is selected. An unreadable record is selected
// only by the empty filter: nothing is known about it.
func (f *Filter) Match(r *Record) bool {
	if r.Unreadable != "" {
		return f.Empty()
	}
	d := &r.DeadLetter
	switch {
	case len(f.Reasons) > 0 && !slices.Contains(f.Reasons, d.Reason):
		return false
	case len(f.Statuses) > 0 && !f.status[d.StatusCode] && !f.class[d.StatusCode/100]:
		return false
	case len(f.ErrorCodes) > 0 && !slices.ContainsFunc(f.ErrorCodes, func(c string) bool { return strings.EqualFold(c, d.ErrorCode) }):
		return false
	case len(f.JobIDs) > 0 && !slices.Contains(f.JobIDs, d.JobID):
		return false
	case !f.sinceT.IsZero() && d.FailedAt.Before(f.sinceT):
		return false
	case !f.untilT.IsZero() && !d.FailedAt.Before(f.untilT):
		return false
	}
	return true
}

// errStopScan ends a scan early (a limit was reached).
var errStopScan = errors.New("stop scan")

// Scan streams the dead letters that match f, in stream order, without
// holding them in memory. limit > 0 stops after that many matches. total
// counts the dead letters read.
func Scan(ctx context.Context, conn *queue.Conn, f *Filter, limit int, fn func(Record) error) (matched, total int, err error) {
	err = conn.Scan(ctx, conn.Config().DLQStream, func(m queue.StoredMsg) error {
		total++
		r := DecodeRecord(m)
		if !f.Match(&r) {
			return nil
		}
		matched++
		if err := fn(r); err != nil {
			return err
		}
		if limit > 0 && matched >= limit {
			return errStopScan
		}
		return nil
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return matched, total, err
}
