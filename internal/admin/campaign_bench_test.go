package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// publishResults stores n result events of campaign, asynchronously.
func publishResults(b *testing.B, env *testenv.Env, campaign string, n int) {
	b.Helper()
	subj := env.Conn.Config().ResultSubject
	for i := range n {
		data, err := json.Marshal(worker.Result{JobID: fmt.Sprintf("%032d", i), Outcome: worker.OutcomeRecovered, Campaign: campaign,
			At: time.Now().UTC(), Attempts: 1, Worker: "bench-worker-0"})
		require.NoError(b, err)
		_, err = env.Conn.JS.PublishAsync(subj, data)
		require.NoError(b, err)
		if i%10_000 == 9_999 {
			<-env.Conn.JS.PublishAsyncComplete()
		}
	}
	<-env.Conn.JS.PublishAsyncComplete()
}

// BenchmarkCampaignPage: the status page's campaign reads with a results
// stream of 200,000 other results before a campaign of 20,000. It reports the first read (from the campaign's
// start), a refresh with nothing new (the loop), a refresh after 1,000
// new results, the report with every job, and the heap the tracker keeps.
func BenchmarkCampaignPage(b *testing.B) {
	old := campaignStartMargin
	campaignStartMargin = 0
	b.Cleanup(func() { campaignStartMargin = old })
	env := testenv.New(b, testenv.Options{})
	ctx := context.Background()
	publishResults(b, env, "", 200_000)
	recordCampaign(b, env, "big", time.Now().UTC(), 21_000)
	publishResults(b, env, "big", 20_000)

	tr := NewCampaignTracker(env.Conn, TrackerConfig{})
	start := time.Now()
	prog, err := tr.Progress(ctx)
	require.NoError(b, err)
	first := time.Since(start)
	require.EqualValues(b, 20_000, prog[0].Recovered)

	for b.Loop() {
		_, err := tr.Progress(ctx)
		require.NoError(b, err)
	}

	publishResults(b, env, "big", 1_000) // the same jobs again: repeats
	start = time.Now()
	_, err = tr.Progress(ctx)
	require.NoError(b, err)
	incr := time.Since(start)
	start = time.Now()
	rep, err := CollectCampaign(ctx, env.Conn, "big", CampaignConfig{Jobs: true})
	require.NoError(b, err)
	report := time.Since(start)
	require.Len(b, rep.Jobs, 20_000)
	b.ReportMetric(first.Seconds(), "first_read_s")
	b.ReportMetric(incr.Seconds(), "refresh_1000_new_s")
	b.ReportMetric(report.Seconds(), "report_s")
	b.ReportMetric(float64(tr.Jobs()), "job_entries")
	// What the tracker keeps: the heap with it, less the heap without it.
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(tr)
	tr = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	b.ReportMetric(float64(with.HeapAlloc)-float64(without.HeapAlloc), "tracker_heap_B")
}
