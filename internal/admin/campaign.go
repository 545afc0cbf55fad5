package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
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
// start) against the result events that name the campaign. Counts are of
// requests (one result event each); Jobs holds each job's latest outcome.
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
	InFlight     int64         `json:"in_flight"`
	LastResultAt time.Time     `json:"last_result_at,omitzero"`
	// Unreadable counts records of the result stream that are not result
	// events (whatever their campaign).
	Unreadable int64          `json:"unreadable,omitempty"`
	Jobs       []JobOutcome   `json:"jobs,omitempty"`
	other      map[string]int // outcomes this version does not know
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

// Finished counts the requests with a result.
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
}

// CollectCampaign reads the campaign's record and its result events (and,
// with cfg.Jobs, its requests still in the request stream). A campaign
// enqueue never recorded is producer.ErrNoCampaign.
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
	rep := &CampaignReport{Campaign: name, StartedAt: rec.StartedAt, Enqueued: rec.Size}
	jobs := make(map[string]JobOutcome)
	reasons := make(map[ReasonCount]int64) // Count zero: the key
	err = conn.Scan(ctx, cfg.Results, func(m queue.StoredMsg) error {
		var res worker.Result
		if err := json.Unmarshal(m.Data, &res); err != nil {
			rep.Unreadable++ // not a result this version reads: counted, not fatal
			return nil       //nolint:nilerr // see above
		}
		if res.Campaign != name {
			return nil
		}
		switch res.Outcome {
		case worker.OutcomeRecovered:
			rep.Recovered++
			if res.Verified {
				rep.Verified++
			}
		case worker.OutcomeAlreadyEnabled:
			rep.AlreadyEnabled++
		case worker.OutcomeDeadLettered:
			rep.DeadLettered++
			reasons[ReasonCount{Reason: res.Reason, ErrorCode: res.ErrorCode}]++
		default:
			if rep.other == nil {
				rep.other = make(map[string]int)
			}
			rep.other[res.Outcome]++
			return nil
		}
		if res.At.After(rep.LastResultAt) {
			rep.LastResultAt = res.At
		}
		if cfg.Jobs {
			if prev, ok := jobs[res.JobID]; !ok || !res.At.Before(prev.At) {
				jobs[res.JobID] = JobOutcome{JobID: res.JobID, Outcome: res.Outcome, Verified: res.Verified, Reason: res.Reason,
					Status: res.Status, ErrorCode: res.ErrorCode, RequestID: res.RequestID, Attempts: res.Attempts, At: res.At.UTC(), StreamSeq: res.StreamSeq}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, n := range reasons {
		k.Count = n
		rep.ByReason = append(rep.ByReason, k)
	}
	slices.SortFunc(rep.ByReason, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.ErrorCode, b.ErrorCode))
	})
	rep.InFlight = max(rep.Enqueued-rep.Finished(), 0)
	if cfg.Jobs {
		if rep.InFlight > 0 {
			if err := pendingJobs(ctx, conn, cfg.Stream, name, jobs); err != nil {
				return nil, err
			}
		}
		rep.Jobs = slices.SortedFunc(maps.Values(jobs), func(a, b JobOutcome) int {
			return cmp.Or(cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.JobID, b.JobID))
		})
	}
	return rep, nil
}

// pendingJobs adds the campaign's requests still in the request stream as
// in flight, for jobs without a result. A work-queue stream admits no
// second consumer: they are read by sequence.
func pendingJobs(ctx context.Context, conn *queue.Conn, stream, name string, jobs map[string]JobOutcome) error {
	s, err := conn.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info, err := conn.StreamInfo(ctx, stream)
	if err != nil {
		return err
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, queue.ErrMsgNotFound) {
			continue // acked meanwhile
		}
		if err != nil {
			return fmt.Errorf("pending requests: %w", err)
		}
		req, err := worker.Decode(m.Data, m.Header, worker.DecodeOptions{ValidRegion: func(string) bool { return true }})
		if err != nil || req.Campaign != name {
			continue
		}
		if _, done := jobs[req.JobID]; !done {
			jobs[req.JobID] = JobOutcome{JobID: req.JobID, Outcome: OutcomeInFlight, StreamSeq: m.Seq}
		}
	}
	return nil
}
