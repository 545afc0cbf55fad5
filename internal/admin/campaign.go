package admin

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Outcomes of a campaign's job, as the report names them: the result
// events' (recovered, already_enabled, dead_lettered) and in_flight for a
// request with no result yet.
const (
	OutcomeInFlight = "in_flight"
)

// CampaignReport is a campaign's outcomes: the record enqueue made (size,
// start) against the result events that name the campaign. Outcome counts
// are of jobs, each by its latest result (see Repeated); Jobs holds each
// job's latest outcome.
// Its JSON is `worker report --json` and is stable for scripts.
type CampaignReport struct {
	Campaign  string    `json:"campaign"`
	StartedAt time.Time `json:"started_at"`
	// Enqueued counts the requests stored for the campaign.
	Enqueued int64 `json:"enqueued"`
	// Recovered counts requests recovered; Verified those whose job was
	// read back enabled (run --verify).
	Recovered int64 `json:"recovered"`
	Verified  int64 `json:"verified"`
	// AlreadyEnabled counts requests ended without a recover because the
	// job was not disabled (run --skip-enabled).
	AlreadyEnabled int64 `json:"already_enabled"`
	// DeadLettered counts requests dead-lettered; ByReason splits them by
	// reason and error code.
	DeadLettered int64         `json:"dead_lettered"`
	ByReason     []ReasonCount `json:"dead_lettered_by,omitempty"`
	// InFlight counts requests enqueued and not finished: the size less
	// the result events.
	InFlight int64 `json:"in_flight"`
	// Repeated counts result events that replaced an earlier outcome of
	// the same job (a dead letter replayed, a job enqueued again): the
	// counts above are of jobs, by their latest outcome.
	Repeated     int64     `json:"repeated,omitempty"`
	LastResultAt time.Time `json:"last_result_at,omitzero"`
	// Unreadable counts records of the result stream that are not result
	// events (whatever their campaign).
	Unreadable int64        `json:"unreadable,omitempty"`
	Jobs       []JobOutcome `json:"jobs,omitempty"`
	// PendingNotListed is set when Jobs lacks the requests still in
	// flight: the request stream held more than CampaignConfig.MaxPendingRead.
	PendingNotListed bool           `json:"pending_not_listed,omitempty"`
	other            map[string]int // outcomes this version does not know
}

// ReasonCount is a count of dead letters with one reason and error code.
type ReasonCount struct {
	Reason    string `json:"reason"`
	ErrorCode string `json:"error_code,omitempty"`
	Count     int64  `json:"count"`
}

// JobOutcome is one job's latest outcome in the campaign.
type JobOutcome struct {
	JobID     string    `json:"job_id"`
	Outcome   string    `json:"outcome"`
	Verified  bool      `json:"verified,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Status    int       `json:"status,omitempty"`
	ErrorCode string    `json:"error_code,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	At        time.Time `json:"at,omitzero"`
	StreamSeq uint64    `json:"stream_seq,omitempty"`
}

// Finished counts the jobs with a result.
func (r *CampaignReport) Finished() int64 { return r.Recovered + r.AlreadyEnabled + r.DeadLettered }

// CampaignConfig says where a campaign's records are.
type CampaignConfig struct {
	// Stream is the request stream (its campaign bucket is read); default
	// the connection's.
	Stream string
	// Results is the result stream; default the connection's.
	Results string
	// Jobs fills CampaignReport.Jobs, in-flight ones included (read from
	// the request stream, message by message).
	Jobs bool
	// MaxPendingRead bounds the request stream's messages read one by one
	// for the jobs in flight (with Jobs); 0 = no bound.
	MaxPendingRead int
}

// campaignStartMargin is how long before a campaign's recorded start its
// result events are looked for: the record's time is the enqueuing host's
// clock, the stream's times the server's. A variable for tests.
var campaignStartMargin = 5 * time.Minute

// CollectCampaign reads the campaign's record and its result events (and,
// with cfg.Jobs, its requests still in the request stream). A campaign
// enqueue never recorded is producer.ErrNoCampaign. The result stream is
// read from the campaign's start (less campaignStartMargin), found by time,
// not from its first message: a report costs what the campaign's window
// holds, whatever the stream's history.
func CollectCampaign(ctx context.Context, conn *queue.Conn, name string, cfg CampaignConfig) (*CampaignReport, error) {
	qc := conn.Config()
	if cfg.Stream == "" {
		cfg.Stream = qc.Stream
	}
	if cfg.Results == "" {
		cfg.Results = qc.ResultStream
	}
	rec, err := producer.ReadCampaign(ctx, conn.JS, cfg.Stream, name)
	if err != nil {
		return nil, err
	}
	from, err := conn.SeqAt(ctx, cfg.Results, rec.StartedAt.Add(-campaignStartMargin))
	if err != nil {
		return nil, err
	}
	t := newTally(rec, cfg.Jobs)
	var unreadable int64
	_, err = conn.ScanFrom(ctx, cfg.Results, from, func(m queue.StoredMsg) error {
		res, ok := decodeResult(m.Data)
		if !ok {
			unreadable++ // not a result this version reads: counted, not fatal
			return nil
		}
		if res.Campaign == name {
			t.add(res, m.Seq, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := t.report()
	rep.Unreadable = unreadable
	if cfg.Jobs {
		if rep.InFlight > 0 {
			omitted, err := pendingJobs(ctx, conn, cfg.Stream, name, t.details, cfg.MaxPendingRead)
			if err != nil {
				return nil, err
			}
			rep.PendingNotListed = omitted
		}
		rep.Jobs = slices.SortedFunc(maps.Values(t.details), func(a, b JobOutcome) int {
			return cmp.Or(cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.JobID, b.JobID))
		})
	}
	return rep, nil
}

// decodeResult reads a result event; ok is false for a record that is not
// one. Records without a campaign are skipped unparsed (most of a busy
// stream, on the status page's every refresh).
func decodeResult(data []byte) (worker.Result, bool) {
	var res worker.Result
	if !bytes.Contains(data, []byte(`"campaign"`)) {
		return res, json.Valid(data)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return res, false
	}
	return res, true
}

// outcomeKind is what a job's latest result says, interned: a tally keeps
// one small number per job, not its result.
type outcomeKind struct {
	outcome, reason, errorCode string
	verified                   bool
}

// tally counts a campaign's outcomes from its result events, each job
// once with its latest outcome in stream order: a dead-lettered request
// replayed (worker dlq replay keeps its campaign) and recovered counts as
// recovered, not as both. InFlight is by requests (the record's size less
// the result events), so a job enqueued twice is in flight until both
// requests finished. Results without a job id, or beyond a bound on the
// jobs kept, are counted by request.
type tally struct {
	rec     producer.Campaign
	results int64                 // result events of known outcomes
	kinds   []outcomeKind         // index: a jobs value
	kindIdx map[outcomeKind]int   // kinds' index
	counts  []int64               // jobs (or unkept requests) per kind
	jobs    map[string]int        // job id → kind of its latest outcome
	loose   int64                 // results counted without a job entry
	last    time.Time             // latest result's time
	other   map[string]int        // outcomes this version does not know
	details map[string]JobOutcome // each job's latest result, when asked
}

func newTally(rec producer.Campaign, details bool) *tally {
	t := &tally{rec: rec, kindIdx: map[outcomeKind]int{}, jobs: map[string]int{}}
	if details {
		t.details = map[string]JobOutcome{}
	}
	return t
}

// add counts res, stored at seq. keep says whether a job not seen yet may
// get an entry (the caller's bound); without one it is counted by request.
// It reports whether it made a new entry.
func (t *tally) add(res worker.Result, seq uint64, keep bool) (added bool) {
	switch res.Outcome {
	case worker.OutcomeRecovered, worker.OutcomeAlreadyEnabled, worker.OutcomeDeadLettered:
	default:
		if t.other == nil {
			t.other = make(map[string]int)
		}
		t.other[res.Outcome]++
		return false
	}
	t.results++
	if res.At.After(t.last) {
		t.last = res.At
	}
	k := outcomeKind{outcome: res.Outcome, verified: res.Verified && res.Outcome == worker.OutcomeRecovered}
	if res.Outcome == worker.OutcomeDeadLettered {
		k.reason, k.errorCode = res.Reason, res.ErrorCode
	}
	i, ok := t.kindIdx[k]
	if !ok {
		i = len(t.kinds)
		t.kinds, t.counts = append(t.kinds, k), append(t.counts, 0)
		t.kindIdx[k] = i
	}
	if t.details != nil && res.JobID != "" {
		t.details[res.JobID] = JobOutcome{JobID: res.JobID, Outcome: res.Outcome, Verified: res.Verified, Reason: res.Reason,
			Status: res.Status, ErrorCode: res.ErrorCode, RequestID: res.RequestID, Attempts: res.Attempts, At: res.At.UTC(), StreamSeq: seq}
	}
	prev, seen := t.jobs[res.JobID]
	switch {
	case res.JobID != "" && seen:
		t.counts[prev]--
	case res.JobID != "" && keep:
		added = true
	default:
		t.loose++
		t.counts[i]++
		return false
	}
	t.jobs[res.JobID] = i
	t.counts[i]++
	return added
}

// report is the tally as a CampaignReport (without Jobs).
func (t *tally) report() *CampaignReport {
	rep := &CampaignReport{Campaign: t.rec.Name, StartedAt: t.rec.StartedAt, Enqueued: t.rec.Size, LastResultAt: t.last, other: t.other}
	reasons := make(map[ReasonCount]int64) // Count zero: the key
	for i, k := range t.kinds {
		n := t.counts[i]
		switch k.outcome {
		case worker.OutcomeRecovered:
			rep.Recovered += n
			if k.verified {
				rep.Verified += n
			}
		case worker.OutcomeAlreadyEnabled:
			rep.AlreadyEnabled += n
		case worker.OutcomeDeadLettered:
			rep.DeadLettered += n
			if n > 0 {
				reasons[ReasonCount{Reason: k.reason, ErrorCode: k.errorCode}] += n
			}
		}
	}
	for k, n := range reasons {
		k.Count = n
		rep.ByReason = append(rep.ByReason, k)
	}
	slices.SortFunc(rep.ByReason, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.ErrorCode, b.ErrorCode))
	})
	rep.Repeated = t.results - int64(len(t.jobs)) - t.loose
	rep.InFlight = max(rep.Enqueued-t.results, 0)
	return rep
}

// pendingJobs adds the campaign's requests still in the request stream as
// in flight, for jobs without a result. A work-queue stream admits no
// second consumer: they are read by sequence, so a stream holding more
// than limit messages (0: no bound) is not read and omitted is set.
func pendingJobs(ctx context.Context, conn *queue.Conn, stream, name string, jobs map[string]JobOutcome, limit int) (omitted bool, err error) {
	s, err := conn.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	info, err := conn.StreamInfo(ctx, stream)
	if err != nil {
		return false, err
	}
	if limit > 0 && info.State.Msgs > uint64(limit) {
		return true, nil
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, queue.ErrMsgNotFound) {
			continue // acked meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("pending requests: %w", err)
		}
		req, err := worker.Decode(m.Data, m.Header, worker.DecodeOptions{ValidRegion: func(string) bool { return true }})
		if err != nil || req.Campaign != name {
			continue
		}
		if _, done := jobs[req.JobID]; !done {
			jobs[req.JobID] = JobOutcome{JobID: req.JobID, Outcome: OutcomeInFlight, StreamSeq: m.Seq}
		}
	}
	return false, nil
}

// ReportCSVHeader is the columns of WriteCSV, a contract for spreadsheets.
var ReportCSVHeader = []string{"job_id", "outcome", "verified", "reason", "status", "error_code", "request_id", "attempts", "at", "stream_seq"}

// WriteCSV writes one row per job of r.Jobs (`worker report --csv` and the
// status page's download), cells a spreadsheet cannot read as formulas.
func (r *CampaignReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ReportCSVHeader); err != nil {
		return err
	}
	for _, j := range r.Jobs {
		at := ""
		if !j.At.IsZero() {
			at = j.At.UTC().Format(time.RFC3339Nano)
		}
		status := ""
		if j.Status != 0 {
			status = strconv.Itoa(j.Status)
		}
		row := []string{csvSafe(j.JobID), j.Outcome, strconv.FormatBool(j.Verified), csvSafe(j.Reason), status, csvSafe(j.ErrorCode),
			csvSafe(j.RequestID), strconv.Itoa(j.Attempts), at, strconv.FormatUint(j.StreamSeq, 10)}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
