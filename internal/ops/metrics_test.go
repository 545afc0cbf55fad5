package ops_test

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

type metricsBundle struct {
	server  *ops.Server
	metrics *ops.Metrics
}

func setupMetrics(t *testing.T) metricsBundle {
	t.Helper()
	reg := ops.NewRegistry(buildinfo.Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26"})
	m, err := ops.NewMetrics(reg)
	require.NoError(t, err)
	b := metricsBundle{server: ops.New(ops.Config{Gatherer: reg}), metrics: m}
	// Names, units and help follow Prometheus conventions.
	problems, err := promlint.New(strings.NewReader(b.scrape(t))).Lint()
	require.NoError(t, err)
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, ops.Namespace) {
			t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
		}
	}
	return b
}

// scrape returns the /metrics text.
func (b metricsBundle) scrape(t *testing.T) string {
	t.Helper()
	code, body := get(t, b.server.Handler(), "/metrics")
	require.Equal(t, 200, code)
	return body
}

// feed reports what one small drain would.
func feed(o worker.Observer) {
	const job = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
	o.Call(worker.Call{JobID: job, Status: 429, ErrorCode: "APIG.0308", Class: "throttled", Duration: 20 * time.Millisecond})
	o.Retry("throttled", time.Second)
	o.Call(worker.Call{JobID: job, Status: 0, Class: "transient", Duration: 10 * time.Second})
	o.Retry("transient", 100*time.Millisecond)
	o.Call(worker.Call{JobID: job, Status: 200, Class: "success", Duration: 50 * time.Millisecond})
	o.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered, JobID: job, StreamSeq: 1, Delivery: 1, Status: 200})
	o.Call(worker.Call{JobID: job, Status: 404, ErrorCode: "CB.00060200", Class: "client_error", Duration: 30 * time.Millisecond})
	o.Outcome(worker.Outcome{Kind: worker.OutcomeDeadLettered, Reason: worker.ReasonClientError, JobID: job, StreamSeq: 2, Delivery: 1, Status: 404,
		HeadersRefused: 3})
	o.Outcome(worker.Outcome{Kind: worker.OutcomeHandedBack, Reason: "shutdown", JobID: job, StreamSeq: 3})
	// A reason that is not a constant must not become its own series.
	o.Outcome(worker.Outcome{Kind: worker.OutcomeHandedBack, Reason: "nak failed: connection reset by peer", JobID: job, StreamSeq: 4})
}

func TestMetricsExposeDocumentedNames(t *testing.T) {
	b := setupMetrics(t)
	feed(b.metrics)
	b.metrics.SetState(ops.State{
		InFlight: func() int { return 7 },
		Regions: func() []ops.RegionState {
			return []ops.RegionState{
				{Region: "cn-north-4", Breaker: retry.BreakerOpen, Pause: ops.PauseThrottle, RateLimit: 42.5},
				{Region: "ap-southeast-1", Pause: ops.PauseCredentials},
			}
		},
	})
	body := b.scrape(t)

	documented := documentedMetrics(t)
	exposed := exposedMetrics(body)
	require.ElementsMatch(t, documented, exposed, "docs/metrics.md and /metrics must list the same codearts_recover_ metrics")

	for _, want := range []string{
		`codearts_recover_deliveries_total{outcome="recovered",reason=""} 1`,
		`codearts_recover_deliveries_total{outcome="dead_lettered",reason="client_error"} 1`,
		`codearts_recover_deliveries_total{outcome="handed_back",reason="shutdown"} 1`,
		`codearts_recover_deliveries_total{outcome="handed_back",reason="other"} 1`,
		`codearts_recover_dead_letters_total{reason="client_error"} 1`,
		`codearts_recover_dead_letters_total{reason="max_deliveries"} 0`,
		`codearts_recover_dead_letter_headers_refused_total 3`,
		`codearts_recover_api_calls_total{class="throttled",code="429"} 1`,
		`codearts_recover_api_calls_total{class="transient",code="error"} 1`,
		`codearts_recover_api_calls_total{class="success",code="200"} 1`,
		`codearts_recover_api_call_duration_seconds_bucket{class="success",le="0.05"} 1`,
		`codearts_recover_api_call_duration_seconds_count{class="transient"} 1`,
		`codearts_recover_retries_total{cause="throttled"} 1`,
		`codearts_recover_retries_total{cause="redelivery"} 0`,
		`codearts_recover_deliveries_in_flight 7`,
		`codearts_recover_api_rate_limit_per_second{region="cn-north-4"} 42.5`,
		`codearts_recover_api_rate_limit_per_second{region="ap-southeast-1"} 0`,
		`codearts_recover_breaker_state{region="cn-north-4",state="closed"} 0`,
		`codearts_recover_breaker_state{region="cn-north-4",state="half_open"} 0`,
		`codearts_recover_breaker_state{region="cn-north-4",state="open"} 1`,
		`codearts_recover_breaker_state{region="ap-southeast-1",state="closed"} 1`,
		`codearts_recover_pause_state{region="cn-north-4",state="none"} 0`,
		`codearts_recover_pause_state{region="cn-north-4",state="throttle"} 1`,
		`codearts_recover_pause_state{region="cn-north-4",state="credentials"} 0`,
		`codearts_recover_pause_state{region="ap-southeast-1",state="credentials"} 1`,
		`codearts_recover_pause_state{region="ap-southeast-1",state="none"} 0`,
		`codearts_recover_build_info{goversion="go1.26",revision="abc",version="v1.2.3"} 1`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "cb5fa20de5fd4cf8be681d4bd6fdd2f6", "a job id must never be a label")
	require.NotContains(t, body, "connection reset")
}

func TestMetricsStateDefaults(t *testing.T) {
	b := setupMetrics(t)
	body := b.scrape(t)
	for _, want := range []string{
		"codearts_recover_deliveries_in_flight 0",
		"codearts_recover_consumer_pending_messages 0",
	} {
		require.Contains(t, body, want)
	}
}

// Breaker and pause follow the OpenMetrics StateSet convention: for each
// region every state has a series and exactly one of them is 1, whatever
// the state, so an alert on a state by name can neither miss a region
// nor see two states at once.
func TestStateSetsHaveExactlyOneCurrentState(t *testing.T) {
	for _, br := range []retry.BreakerState{retry.BreakerClosed, retry.BreakerHalfOpen, retry.BreakerOpen} {
		for _, pause := range []ops.PauseState{ops.PauseNone, ops.PauseThrottle, ops.PauseCredentials} {
			b := setupMetrics(t)
			b.metrics.SetState(ops.State{Regions: func() []ops.RegionState {
				return []ops.RegionState{{Region: "cn-north-4", Breaker: br, Pause: pause}, {Region: "cn-south-1"}}
			}})
			e := parseExposition(t, b.scrape(t))
			for _, family := range []string{"codearts_recover_breaker_state", "codearts_recover_pause_state"} {
				require.Equal(t, "gauge", e.types[family])
				require.ElementsMatch(t, []string{"cn-north-4", "cn-south-1"}, e.samples[family]["region"])
			}
			body := b.scrape(t)
			for region, want := range map[string][2]string{"cn-north-4": {br.String(), pause.String()}, "cn-south-1": {"closed", "none"}} {
				for i, family := range []string{"codearts_recover_breaker_state", "codearts_recover_pause_state"} {
					var current []string
					for line := range strings.Lines(body) {
						rest, ok := strings.CutPrefix(line, family+`{region="`+region+`",state="`)
						if ok && strings.HasSuffix(strings.TrimSpace(rest), " 1") {
							current = append(current, rest[:strings.Index(rest, `"`)])
						}
					}
					require.Equal(t, []string{want[i]}, current, "%s of %s with breaker %s, pause %s", family, region, br, pause)
				}
			}
		}
	}
}

func TestDrainTally(t *testing.T) {
	var d ops.DrainTally
	d.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered}) // before shutdown: not counted
	d.Begin()
	d.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered})
	d.Outcome(worker.Outcome{Kind: worker.OutcomeDeadLettered, Reason: worker.ReasonClientError})
	d.Outcome(worker.Outcome{Kind: worker.OutcomeHandedBack, Reason: "shutdown"})
	d.Outcome(worker.Outcome{Kind: worker.OutcomeLeaseLost})
	finished, handedBack := d.Counts()
	require.Equal(t, int64(2), finished)
	require.Equal(t, int64(2), handedBack)
}

var docName = regexp.MustCompile("^\\| `(codearts_recover_[a-z_]+)`")

// documentedMetrics reads the metric table of docs/metrics.md.
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/metrics.md")
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := docName.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// exposedMetrics lists the codearts_recover_ families in a scrape.
func exposedMetrics(body string) []string {
	var out []string
	for line := range strings.Lines(body) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], ops.Namespace+"_") {
			if !slices.Contains(out, f[2]) {
				out = append(out, f[2])
			}
		}
	}
	return out
}

// The page's totals are counted from the events, typed: they agree with
// the Prometheus counters without reading them back by name.
func TestTotalsFollowTheEvents(t *testing.T) {
	m, err := ops.NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)
	m.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered})
	m.Outcome(worker.Outcome{Kind: worker.OutcomeRecovered})
	m.Outcome(worker.Outcome{Kind: worker.OutcomeDeadLettered, Reason: worker.ReasonClientError})
	m.Outcome(worker.Outcome{Kind: worker.OutcomeHandedBack, Reason: "shutdown"})
	m.Call(worker.Call{Status: 200})
	m.Call(worker.Call{Status: 429})
	m.Call(worker.Call{})
	m.Retry("throttled", time.Second)

	got := m.Totals()
	require.Equal(t, int64(2), got.Recovered)
	require.Equal(t, int64(1), got.DeadLettered[worker.ReasonClientError])
	require.Equal(t, int64(0), got.DeadLettered[worker.ReasonRetriesExhausted], "every reason listed from the start")
	require.Equal(t, map[string]int64{"200": 1, "429": 1, "error": 1}, got.APICalls)
	require.Equal(t, int64(1), got.Retries["throttled"])
	require.Equal(t, int64(3), got.Finished())
	require.Equal(t, int64(3), got.Calls())

	got.APICalls["200"] = 99
	require.Equal(t, int64(1), m.Totals().APICalls["200"], "a copy")
}
