//go:build e2e

package e2e

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// TestJudge proves the oracle can fail: it must see a loss, a double
// terminal, a wrong reason and an API call for bad input.
func TestJudge(t *testing.T) {
	items := map[uint64]*item{
		1: {msgID: "a", jobID: "a", want: outcomeRecovered},
		2: {msgID: "b", jobID: "b", want: outcomeRecovered},                       // lost
		3: {msgID: "c", jobID: "c", want: worker.ReasonClientError},               // double
		4: {msgID: "d", jobID: "d", want: worker.ReasonClientError},               // wrong reason
		5: {msgID: "e", jobID: "e", want: worker.ReasonInvalidRequest, bad: true}, // called
		6: {msgID: "f", jobID: "f", want: worker.ReasonClientError},               // fine
		7: {msgID: "g", jobID: "g", want: outcomeRecovered},                       // max_deliveries
	}
	res := func(seq uint64, job, outcome, reason string) []byte {
		b, _ := json.Marshal(worker.Result{StreamSeq: seq, JobID: job, Outcome: outcome, Reason: reason})
		return b
	}
	dl := func(seq uint64, job, reason string) []byte {
		b, _ := json.Marshal(worker.DeadLetter{JobID: job, Reason: reason, Original: worker.Original{StreamSeq: seq}})
		return b
	}
	results := [][]byte{
		res(1, "a", worker.OutcomeRecovered, ""),
		res(3, "c", worker.OutcomeRecovered, ""),
		res(3, "c", worker.OutcomeDeadLettered, worker.ReasonClientError),
		res(4, "d", worker.OutcomeDeadLettered, worker.ReasonRetriesExhausted),
		res(5, "e", worker.OutcomeDeadLettered, worker.ReasonInvalidRequest),
		res(6, "f", worker.OutcomeDeadLettered, worker.ReasonClientError),
		res(7, "g", worker.OutcomeDeadLettered, worker.ReasonMaxDeliveries),
	}
	dls := [][]byte{
		dl(3, "c", worker.ReasonClientError),
		dl(4, "d", worker.ReasonRetriesExhausted),
		dl(5, "e", worker.ReasonInvalidRequest),
		dl(6, "f", worker.ReasonClientError),
		dl(7, "g", worker.ReasonMaxDeliveries),
	}
	stats := codeartssim.Stats{Calls: 5, Jobs: map[string]codeartssim.JobStats{
		"a": {Calls: 2, Recovered: 2}, "c": {Calls: 1, Recovered: 1}, "e": {Calls: 1},
	}}

	f, problems := judge(items, results, dls, stats, oracleOptions{})
	require.Equal(t, 7, f.enqueued)
	require.Equal(t, 1, f.lost)
	require.Equal(t, 1, f.doubleTerminal)
	require.Equal(t, 1, f.dupAPISuccesses)
	require.Equal(t, 2, f.recovered) // a, and c's recovered result
	require.Equal(t, map[string]int{
		worker.ReasonClientError: 1, worker.ReasonRetriesExhausted: 1,
		worker.ReasonInvalidRequest: 1, worker.ReasonMaxDeliveries: 1,
	}, f.deadLettered)
	require.Contains(t, problems, "lost: stream_seq 2 (msg id b, want recovered)")
	require.Contains(t, problems, "wrong outcome: stream_seq 4 (msg id d) ended retries_exhausted, want client_error")
	require.Contains(t, problems, "wrong outcome: stream_seq 7 (msg id g) ended max_deliveries, want recovered")
	require.Contains(t, problems, "the API saw 1 calls for job ids named only by invalid requests")
	require.Contains(t, problems, "wrong outcome: stream_seq 3 (msg id c) ended recovered, want client_error")

	// After crashes, max_deliveries is an accepted end.
	_, problems = judge(items, results, dls, stats, oracleOptions{allowMaxDeliveries: true})
	require.NotContains(t, problems, "wrong outcome: stream_seq 7 (msg id g) ended max_deliveries, want recovered")
}
