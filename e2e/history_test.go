//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// history is everything a randomized run did and saw, kept so that a
// violation found by the oracle can be shown with the few events that
// explain it: when the request was published and in what form, the faults
// that were on around it, the records the workers stored for it, what the
// simulator saw for its job, and the worker log lines that name it.
type history struct {
	start     time.Time
	published map[uint64]publication // by stream sequence
	faults    []faultSpan
	logs      []string // worker log files
}

type publication struct {
	at   time.Time
	kind string
	it   *item
}

// faultSpan is one fault as it was performed.
type faultSpan struct {
	f          fault
	begin, end time.Time
}

var seqInProblem = regexp.MustCompile(`stream_seq (\d+)`)

// excerpts returns, for up to max distinct requests named by problems
// (the oracle's "stream_seq N"), the shortest history that shows what
// happened to each.
func (h *history) excerpts(problems []string, results, dls [][]byte, stats codeartssim.Stats, limit int) []string {
	var seqs []uint64
	for _, p := range problems {
		m := seqInProblem.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		seq, err := strconv.ParseUint(m[1], 10, 64)
		if err == nil && !slices.Contains(seqs, seq) {
			seqs = append(seqs, seq)
		}
		if len(seqs) == limit {
			break
		}
	}
	out := make([]string, 0, len(seqs))
	for _, seq := range seqs {
		out = append(out, h.excerpt(seq, results, dls, stats))
	}
	return out
}

// excerpt is the history of one request, in time order where it has one.
func (h *history) excerpt(seq uint64, results, dls [][]byte, stats codeartssim.Stats) string {
	var b strings.Builder
	at := func(t time.Time) string { return fmt.Sprintf("%+8.3fs", t.Sub(h.start).Seconds()) }
	fmt.Fprintf(&b, "--- history of stream_seq %d\n", seq)
	p, ok := h.published[seq]
	from, to := h.start, time.Now()
	if ok {
		from = p.at
		fmt.Fprintf(&b, "%s published %s msg_id=%q job_id=%q body_bytes=%d want=%s\n",
			at(p.at), p.kind, clipLine(p.it.msgID), p.it.jobID, len(p.it.body), p.it.want)
	} else {
		b.WriteString("          never published by the test\n")
	}
	jobID := ""
	if ok {
		jobID = p.it.jobID
	}
	var last time.Time
	for _, raw := range results {
		var r worker.Result
		if json.Unmarshal(raw, &r) != nil || r.StreamSeq != seq {
			continue
		}
		if r.At.After(last) {
			last = r.At
		}
		fmt.Fprintf(&b, "%s result %s reason=%s status=%d error_code=%s attempts=%d deliveries=%d worker=%s\n",
			at(r.At), r.Outcome, r.Reason, r.Status, r.ErrorCode, r.Attempts, r.Deliveries, r.Worker)
	}
	for _, raw := range dls {
		var d worker.DeadLetter
		if json.Unmarshal(raw, &d) != nil || d.Original.StreamSeq != seq {
			continue
		}
		if d.FailedAt.After(last) {
			last = d.FailedAt
		}
		fmt.Fprintf(&b, "%s dead letter reason=%s status=%d error_code=%s error_msg=%q attempts=%d deliveries=%d worker=%s\n",
			at(d.FailedAt), d.Reason, d.StatusCode, d.ErrorCode, clipLine(d.ErrorMsg), d.Attempts, d.Deliveries, d.Worker)
	}
	if !last.IsZero() {
		to = last
	}
	for _, fs := range h.faults {
		end := fs.end
		if end.IsZero() {
			end = time.Now()
		}
		if end.Before(from.Add(-time.Second)) || fs.begin.After(to.Add(time.Second)) {
			continue
		}
		fmt.Fprintf(&b, "%s fault %s until %s\n", at(fs.begin), fs.f, at(end))
	}
	if jobID != "" {
		js := stats.Jobs[jobID]
		fmt.Fprintf(&b, "          simulator: job %s called %d times, recovered %d times\n", jobID, js.Calls, js.Recovered)
	}
	// The worker log lines that name the request (by stream sequence, or
	// by job id when it has one).
	needles := []string{fmt.Sprintf(`"stream_seq":%d,`, seq), fmt.Sprintf(`"stream_seq":%d}`, seq)}
	if jobID != "" {
		needles = append(needles, `"job_id":"`+jobID+`"`)
	}
	var lines []string
	for _, path := range h.logs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			for _, n := range needles {
				if strings.Contains(line, n) {
					lines = append(lines, clipLine(line))
					break
				}
			}
		}
	}
	const maxLines = 12
	if len(lines) > maxLines {
		lines = append(lines[:maxLines/2], append([]string{fmt.Sprintf("… %d lines …", len(lines)-maxLines)}, lines[len(lines)-maxLines/2:]...)...)
	}
	for _, l := range lines {
		b.WriteString("          log " + l + "\n")
	}
	return b.String()
}

// TestHistoryExcerpt: a violation's excerpt names the request's
// publication, its records, the faults on around it (not the others), what
// the simulator saw and the log lines that name it (not the others').
func TestHistoryExcerpt(t *testing.T) {
	start := time.Now()
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	logPath := filepath.Join(t.TempDir(), "w1.log")
	job := "ok000000000000000000000000000001"
	require.NoError(t, os.WriteFile(logPath, []byte(strings.Join([]string{
		`{"msg":"recovered","stream_seq":7,"job_id":"` + job + `"}`,
		`{"msg":"recovered","stream_seq":70,"job_id":"ok000000000000000000000000000070"}`,
		`{"msg":"dead-lettered","stream_seq":7}`,
	}, "\n")), 0o600))
	h := &history{
		start:     start,
		published: map[uint64]publication{7: {at: at(1), kind: "good", it: &item{msgID: job, jobID: job, want: outcomeRecovered}}},
		faults: []faultSpan{
			{f: fault{kind: faultNATSKill, target: 1, dur: time.Second}, begin: at(2), end: at(3)},
			{f: fault{kind: faultAPIOutage, dur: time.Second}, begin: at(30), end: at(31)},
		},
		logs: []string{logPath},
	}
	res, _ := json.Marshal(worker.Result{StreamSeq: 7, JobID: job, Outcome: worker.OutcomeRecovered, At: at(4), Worker: "w1"})
	other, _ := json.Marshal(worker.Result{StreamSeq: 70, Outcome: worker.OutcomeRecovered, At: at(5)})
	dl, _ := json.Marshal(worker.DeadLetter{JobID: job, Reason: worker.ReasonClientError, FailedAt: at(5), Worker: "w2", Original: worker.Original{StreamSeq: 7}})
	stats := codeartssim.Stats{Jobs: map[string]codeartssim.JobStats{job: {Calls: 2, Recovered: 1}}}

	ex := h.excerpts([]string{"double terminal: stream_seq 7 (msg id x): 1 recovered results", "no seq here"}, [][]byte{res, other}, [][]byte{dl}, stats, 3)
	require.Len(t, ex, 1)
	for _, want := range []string{
		"history of stream_seq 7", "published good", "result recovered", "worker=w1",
		"dead letter reason=client_error", "worker=w2", "fault nats_kill n2", "called 2 times, recovered 1 times",
		`"stream_seq":7,"job_id"`, `"msg":"dead-lettered","stream_seq":7}`,
	} {
		require.Contains(t, ex[0], want)
	}
	for _, unwanted := range []string{"api_outage", "stream_seq\":70"} {
		require.NotContains(t, ex[0], unwanted)
	}
}
