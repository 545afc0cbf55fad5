//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// item is one enqueued request and what the oracle expects of it.
type item struct {
	msgID  string // Nats-Msg-Id
	body   []byte
	header nats.Header
	// jobID is the well-formed job id the message names, if any, even
	// when the message as a whole is invalid (e.g. over the size limit).
	jobID string
	// want is the expected terminal state: "recovered" or a dead-letter
	// reason.
	want string
	// bad messages must be dead-lettered invalid_request without any API
	// call for their job id.
	bad bool
}

const outcomeRecovered = "recovered"

func (it *item) msg() *nats.Msg {
	m := nats.NewMsg(requestSubj)
	m.Data = it.body
	for k, vs := range it.header {
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	return m
}

// figures is the line every test ends with.
type figures struct {
	scenario        string
	enqueued        int
	recovered       int
	deadLettered    map[string]int // by reason
	lost            int
	doubleTerminal  int
	dupAPISuccesses int
	// falselyRecovered counts requests reported recovered for a job the
	// simulator never recovered.
	falselyRecovered int
	drain            float64 // seconds from the first publish to an empty request stream; -1 = never
	extra            []string
}

func (f figures) String() string {
	total := 0
	var reasons []string
	for _, r := range slices.Sorted(maps.Keys(f.deadLettered)) {
		total += f.deadLettered[r]
		reasons = append(reasons, fmt.Sprintf("%s:%d", r, f.deadLettered[r]))
	}
	s := fmt.Sprintf("FIGURES %s: enqueued=%d recovered=%d dead_lettered=%d{%s} lost=%d double_terminal=%d falsely_recovered=%d duplicate_api_successes=%d seconds_to_drain=%.1f",
		f.scenario, f.enqueued, f.recovered, total, strings.Join(reasons, ","), f.lost, f.doubleTerminal, f.falselyRecovered, f.dupAPISuccesses, f.drain)
	if len(f.extra) > 0 {
		s += " " + strings.Join(f.extra, " ")
	}
	return s
}

type oracleOptions struct {
	// allowMaxDeliveries accepts max_deliveries for any request: after
	// crashes a request can reach MaxDeliver without a worker ever finishing
	// a delivery, and the SPEC dead-letters it then.
	allowMaxDeliveries bool
	// strictAPICalls fails the run if the API saw a call for anything but
	// the good requests (the bad-input flood).
	strictAPICalls bool
}

// judge compares what was enqueued with the terminal records the workers
// stored: result events (one per request, deduplicated by the server on a
// msg id derived from the stream sequence) and dead letters. It does not
// look at any counter of the worker.
//
//   - lost: an enqueued request with neither a result event nor a dead letter.
//   - double terminal: a request with more than one stored result event, more
//     than one dead letter, or both a "recovered" result and a dead letter.
//   - wrong: a terminal state other than the one expected (reason included).
//
// It also counts duplicate API successes (jobs the simulator recovered more
// than once): allowed by at-least-once, reported, never failed on.
func judge(items map[uint64]*item, results, dls [][]byte, stats codeartssim.Stats, o oracleOptions) (figures, []string) {
	type recs struct {
		recovered, deadResults []worker.Result
		dead                   []worker.DeadLetter
	}
	var problems []string
	bySeq := map[uint64]*recs{}
	get := func(seq uint64) *recs {
		r := bySeq[seq]
		if r == nil {
			r = &recs{}
			bySeq[seq] = r
		}
		return r
	}
	for i, raw := range results {
		var r worker.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			problems = append(problems, fmt.Sprintf("result event %d is not JSON: %v", i, err))
			continue
		}
		switch r.Outcome {
		case worker.OutcomeRecovered:
			get(r.StreamSeq).recovered = append(get(r.StreamSeq).recovered, r)
		case worker.OutcomeDeadLettered:
			get(r.StreamSeq).deadResults = append(get(r.StreamSeq).deadResults, r)
		default:
			problems = append(problems, fmt.Sprintf("result event for stream_seq %d has outcome %q", r.StreamSeq, r.Outcome))
		}
	}
	for i, raw := range dls {
		var d worker.DeadLetter
		if err := json.Unmarshal(raw, &d); err != nil {
			problems = append(problems, fmt.Sprintf("dead letter %d is not JSON: %v", i, err))
			continue
		}
		get(d.Original.StreamSeq).dead = append(get(d.Original.StreamSeq).dead, d)
	}
	for seq := range bySeq {
		if items[seq] == nil {
			problems = append(problems, fmt.Sprintf("terminal record for stream_seq %d, which the test did not enqueue", seq))
		}
	}

	f := figures{enqueued: len(items), deadLettered: map[string]int{}}
	wrong := 0
	for _, seq := range slices.Sorted(maps.Keys(items)) {
		it := items[seq]
		r := bySeq[seq]
		if r == nil || len(r.recovered)+len(r.deadResults)+len(r.dead) == 0 {
			f.lost++
			if f.lost <= 5 {
				problems = append(problems, fmt.Sprintf("lost: stream_seq %d (msg id %s, want %s)", seq, it.msgID, it.want))
			}
			continue
		}
		if len(r.recovered) > 1 || len(r.deadResults) > 1 || len(r.dead) > 1 ||
			(len(r.recovered) > 0 && len(r.dead)+len(r.deadResults) > 0) {
			f.doubleTerminal++
			if f.doubleTerminal <= 5 {
				problems = append(problems, fmt.Sprintf("double terminal: stream_seq %d (msg id %s): %d recovered results, %d dead-lettered results, %d dead letters",
					seq, it.msgID, len(r.recovered), len(r.deadResults), len(r.dead)))
			}
		}
		got := outcomeRecovered
		switch {
		case len(r.recovered) > 0:
			if r.recovered[0].JobID != it.jobID {
				problems = append(problems, fmt.Sprintf("stream_seq %d: result names job %q, enqueued %q", seq, r.recovered[0].JobID, it.jobID))
			}
			// The simulator keeps the truth: a job reported recovered must
			// have been recovered by the API (a 200 saying "fail" is not).
			if stats.Jobs[it.jobID].Recovered == 0 {
				f.falselyRecovered++
				if f.falselyRecovered <= 5 {
					problems = append(problems, fmt.Sprintf("falsely recovered: stream_seq %d (job %s) has a recovered result, the API never recovered it", seq, it.jobID))
				}
			}
		case len(r.dead) > 0:
			got = r.dead[0].Reason
			if len(r.deadResults) == 0 {
				problems = append(problems, fmt.Sprintf("stream_seq %d: dead letter %s but no result event", seq, got))
			} else if r.deadResults[0].Reason != got {
				problems = append(problems, fmt.Sprintf("stream_seq %d: dead letter says %s, result event %s", seq, got, r.deadResults[0].Reason))
			}
		default:
			got = r.deadResults[0].Reason
			problems = append(problems, fmt.Sprintf("stream_seq %d: result event says dead-lettered %s but there is no dead letter", seq, got))
		}
		if got == outcomeRecovered {
			f.recovered++
		} else {
			f.deadLettered[got]++
		}
		crashedOut := o.allowMaxDeliveries && got == worker.ReasonMaxDeliveries
		if got != it.want && !crashedOut {
			wrong++
			if wrong <= 5 {
				problems = append(problems, fmt.Sprintf("wrong outcome: stream_seq %d (msg id %s) ended %s, want %s", seq, it.msgID, got, it.want))
			}
		}
	}
	if wrong > 5 {
		problems = append(problems, fmt.Sprintf("wrong outcome: %d requests in all", wrong))
	}
	if f.lost > 5 {
		problems = append(problems, fmt.Sprintf("lost: %d requests in all", f.lost))
	}
	if f.falselyRecovered > 5 {
		problems = append(problems, fmt.Sprintf("falsely recovered: %d requests in all", f.falselyRecovered))
	}
	if f.doubleTerminal > 5 {
		problems = append(problems, fmt.Sprintf("double terminal: %d requests in all", f.doubleTerminal))
	}

	// The API side: duplicate successes (reported) and calls for bad input
	// (never allowed).
	for _, js := range stats.Jobs {
		if js.Recovered > 1 {
			f.dupAPISuccesses++
		}
	}
	good := map[string]bool{}
	for _, it := range items {
		if !it.bad && it.jobID != "" {
			good[it.jobID] = true
		}
	}
	var badCalls, goodCalls int64
	for _, it := range items {
		if it.bad && it.jobID != "" && !good[it.jobID] {
			badCalls += stats.Jobs[it.jobID].Calls
		}
	}
	for id := range good {
		goodCalls += stats.Jobs[id].Calls
	}
	if badCalls > 0 {
		problems = append(problems, fmt.Sprintf("the API saw %d calls for job ids named only by invalid requests", badCalls))
	}
	if o.strictAPICalls && stats.Calls != goodCalls {
		problems = append(problems, fmt.Sprintf("the API saw %d calls, %d of them for the good requests: %d were for something else",
			stats.Calls, goodCalls, stats.Calls-goodCalls))
	}
	f.extra = append(f.extra, fmt.Sprintf("api_calls=%d", stats.Calls))
	return f, problems
}
