package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// recordCampaign writes a campaign's record as enqueue does, with the
// given start and size.
func recordCampaign(t testing.TB, env *testenv.Env, name string, start time.Time, size int64) {
	t.Helper()
	ctx := context.Background()
	kv, err := env.Conn.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: producer.CampaignBucket(env.Conn.Config().Stream), History: 1})
	require.NoError(t, err)
	data, err := json.Marshal(producer.Campaign{Name: name, Size: size, StartedAt: start, UpdatedAt: start, Runs: 1})
	require.NoError(t, err)
	_, err = kv.Put(ctx, name, data)
	require.NoError(t, err)
}

// publishResult stores a result event as the worker does.
func publishResult(t *testing.T, env *testenv.Env, campaign string, job int, outcome, reason string) {
	t.Helper()
	res := worker.Result{JobID: fmt.Sprintf("%032d", job), Outcome: outcome, Reason: reason, Campaign: campaign, At: time.Now().UTC(), Attempts: 1}
	if reason != "" {
		res.ErrorCode = "CB.00031006"
	}
	data, err := json.Marshal(res)
	require.NoError(t, err)
	_, err = env.Conn.Publish(context.Background(), env.Conn.Config().ResultSubject, "", nil, data)
	require.NoError(t, err)
}

// A replayed dead letter that then recovers counts once, as recovered,
// in the report and on the page; a job of another campaign, or a result
// stored before the campaign began, is not read.
func TestCampaignCountsEachJobOnceWithItsLatestOutcome(t *testing.T) {
	old := campaignStartMargin
	campaignStartMargin = 0
	t.Cleanup(func() { campaignStartMargin = old })
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	// History before the campaign: unreadable records a report reading
	// from the stream's first message would count.
	for range 50 {
		_, err := env.Conn.Publish(ctx, env.Conn.Config().ResultSubject, "", nil, []byte("not a result"))
		require.NoError(t, err)
	}
	start := time.Now().UTC()
	recordCampaign(t, env, "c1", start, 4)
	tracker := NewCampaignTracker(env.Conn, TrackerConfig{})

	publishResult(t, env, "c1", 1, worker.OutcomeRecovered, "")
	publishResult(t, env, "c1", 2, worker.OutcomeDeadLettered, worker.ReasonClientError)
	publishResult(t, env, "c1", 3, worker.OutcomeDeadLettered, worker.ReasonClientError)
	publishResult(t, env, "other", 9, worker.OutcomeRecovered, "")
	prog, err := tracker.Progress(ctx)
	require.NoError(t, err)
	require.Len(t, prog, 1)
	require.EqualValues(t, 1, prog[0].Recovered)
	require.EqualValues(t, 2, prog[0].DeadLettered)
	require.EqualValues(t, 1, prog[0].InFlight)

	// Job 2 replayed (same campaign, no new size) and recovered; job 4
	// finishes.
	publishResult(t, env, "c1", 2, worker.OutcomeRecovered, "")
	publishResult(t, env, "c1", 4, worker.OutcomeAlreadyEnabled, "")
	before := tracker.scanned
	prog, err = tracker.Progress(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, tracker.scanned-before, "a refresh reads only what arrived since the last")

	rep, err := CollectCampaign(ctx, env.Conn, "c1", CampaignConfig{Jobs: true})
	require.NoError(t, err)
	for _, r := range []CampaignReport{prog[0].CampaignReport, *rep} {
		require.EqualValues(t, 4, r.Enqueued)
		require.EqualValues(t, 2, r.Recovered, "job 2 counts once, with its latest outcome")
		require.EqualValues(t, 1, r.AlreadyEnabled)
		require.EqualValues(t, 1, r.DeadLettered)
		require.Equal(t, []ReasonCount{{Reason: worker.ReasonClientError, ErrorCode: "CB.00031006", Count: 1}}, r.ByReason)
		require.EqualValues(t, 0, r.InFlight)
		require.EqualValues(t, 1, r.Repeated)
	}
	require.Zero(t, rep.Unreadable, "the report reads from the campaign's start, not the stream's")
	require.Len(t, rep.Jobs, 4)
	var csv bytes.Buffer
	require.NoError(t, rep.WriteCSV(&csv))
	require.Equal(t, 5, strings.Count(csv.String(), "\n"))
	require.Contains(t, csv.String(), fmt.Sprintf("%032d,recovered,", 2))

	before = tracker.scanned
	_, err = tracker.Progress(ctx)
	require.NoError(t, err)
	require.Zero(t, tracker.scanned-before, "nothing new, nothing read")
}

// The tracker keeps at most MaxJobs job entries; past them results are
// counted by request and the campaign says it is approximate. A campaign
// recorded after the tracker started is caught up from its start.
func TestCampaignTrackerBounds(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	recordCampaign(t, env, "big", time.Now().UTC(), 30)
	tracker := NewCampaignTracker(env.Conn, TrackerConfig{MaxJobs: 10, ListEvery: time.Hour})
	_, err := tracker.Progress(ctx)
	require.NoError(t, err)
	for i := range 30 {
		publishResult(t, env, "big", i, worker.OutcomeRecovered, "")
	}
	// A campaign the tracker has not listed yet: its results are read (and
	// skipped) before it is followed.
	recordCampaign(t, env, "late", time.Now().UTC(), 3)
	for i := range 3 {
		publishResult(t, env, "late", 100+i, worker.OutcomeRecovered, "")
	}
	prog, err := tracker.Progress(ctx) // reads both; "late" is unknown: relist next time
	require.NoError(t, err)
	require.Len(t, prog, 1)
	require.LessOrEqual(t, tracker.Jobs(), 10)
	require.True(t, prog[0].Approximate)
	require.EqualValues(t, 30, prog[0].Recovered, "counted by request past the bound")
	require.EqualValues(t, 0, prog[0].InFlight)

	prog, err = tracker.Progress(ctx)
	require.NoError(t, err)
	require.Len(t, prog, 2)
	byName := map[string]CampaignProgress{prog[0].Campaign: prog[0], prog[1].Campaign: prog[1]}
	require.EqualValues(t, 3, byName["late"].Recovered, "caught up from its start")
	require.EqualValues(t, 0, byName["late"].InFlight)
	require.LessOrEqual(t, tracker.Jobs(), 10)
}
