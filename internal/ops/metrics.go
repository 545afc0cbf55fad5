package ops

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Namespace prefixes every metric of the worker.
const Namespace = "codearts_recover"

// State gives the gauges that are read at scrape time rather than fed by
// events. A nil func reads as nothing in flight and no region.
type State struct {
	// InFlight is the number of deliveries being worked on.
	InFlight func() int
	// Regions reads each allowed region's flow control, the default region
	// first; every allowed region is listed from the start (closed, not
	// paused) so that its state-set series exist before its first request.
	Regions func() []RegionState
}

// RegionState is one region's flow control as the gauges show it.
type RegionState struct {
	// Region is the region's name (the default region's included).
	Region string
	// Breaker is the region's API circuit breaker.
	Breaker retry.BreakerState
	// Pause says whether and why the region takes no new calls.
	Pause PauseState
	// RateLimit is the region's current API rate limit in requests/s,
	// 0 = none.
	RateLimit float64
}

// PauseState is why a region takes no new calls. The pause_state gauge is
// a state set over these values: exactly one of them is 1 per region.
type PauseState int

// Pause states. When a region is both throttled and paused for its
// credentials, it reads PauseCredentials: that one needs a person.
const (
	// PauseNone: calls go out.
	PauseNone PauseState = iota
	// PauseThrottle: a Retry-After pause after a throttle answer (seconds).
	PauseThrottle
	// PauseCredentials: a 401, a configuration answer (wrong endpoint or
	// region) or a run of 403s paused the region until a probe succeeds.
	PauseCredentials
)

// String is the state as the pause_state gauge's state label spells it.
func (p PauseState) String() string {
	switch p {
	case PauseThrottle:
		return "throttle"
	case PauseCredentials:
		return "credentials"
	default:
		return "none"
	}
}

var (
	breakerStates = []retry.BreakerState{retry.BreakerClosed, retry.BreakerHalfOpen, retry.BreakerOpen}
	pauseStates   = []PauseState{PauseNone, PauseThrottle, PauseCredentials}
)

// NewRegistry returns a registry with the Go runtime and process
// collectors and the build_info gauge, for Server's /metrics.
func NewRegistry(build buildinfo.Info) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info",
			Help: "Always 1; the labels say which build is running.",
			ConstLabels: prometheus.Labels{
				"version": build.Version, "revision": build.Commit, "goversion": build.GoVersion,
			},
		}, func() float64 { return 1 }),
	)
	return reg
}

// Metrics turns what the pool reports into Prometheus metrics. It
// implements worker.Observer and is safe for concurrent use.
type Metrics struct {
	requests       *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	headersRefused prometheus.Counter
	calls          *prometheus.CounterVec
	callSeconds    *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	pending        prometheus.Gauge
	ackPending     prometheus.Gauge
	lagErrors      prometheus.Counter

	state  atomic.Pointer[State]
	totals *totals // what the status page shows, typed
}

var _ worker.Observer = (*Metrics)(nil)

// The label values known in advance: their series exist (at 0) from the
// start, so rate() and increase() see the first event.
var (
	deadLetterReasons = []string{worker.ReasonClientError, worker.ReasonInvalidRequest, worker.ReasonRetriesExhausted, worker.ReasonMaxDeliveries, worker.ReasonNotRecovered}
	retryCauses       = []string{"throttled", "transient", "unauthorized", "configuration", "forbidden_run", "breaker_open", "redelivery"}
)

// NewMetrics registers the worker's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "deliveries_total",
			Help: "Deliveries of recover requests by how they ended: outcome recovered, dead_lettered, handed_back (nak'd for a later delivery), ack_failed or lease_lost; reason is the dead-letter reason or hand-back cause.",
		}, []string{"outcome", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "dead_letters_total",
			Help: "Requests dead-lettered (stored on the dead-letter subject, then acked) by reason.",
		}, []string{"reason"}),
		headersRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "dead_letter_headers_refused_total",
			Help: "Request header values left out of dead letters because their names are not on the allow-list (traceparent, tracestate, ce-*, content-type, Nats-Msg-Id).",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "api_calls_total",
			Help: `Recover API calls by code (the HTTP status, as promhttp labels it; "error" for a transport error or timeout) and class (how the worker read the answer).`,
		}, []string{"code", "class"}),
		callSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "api_call_duration_seconds",
			Help:    "Duration of recover API calls, by class.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "retries_total",
			Help: "Retries by cause: throttled, transient, unauthorized, forbidden_run, breaker_open (in-process waits) and redelivery (handed back with a delay).",
		}, []string{"cause"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "consumer_pending_messages",
			Help: "Requests in the stream not yet delivered to any worker (the consumer's num_pending), read periodically; the same for every replica.",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "consumer_ack_pending_messages",
			Help: "Requests delivered and not yet acknowledged, fleet-wide (the consumer's num_ack_pending), read periodically.",
		}),
		lagErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "consumer_info_errors_total",
			Help: "Failed reads of the consumer's figures; while they fail the consumer_*_messages gauges keep their last value.",
		}),
	}
	m.state.Store(&State{})
	m.totals = newTotals()
	cs := []prometheus.Collector{
		m.requests, m.deadLetters, m.headersRefused, m.calls, m.callSeconds, m.retries, m.pending, m.ackPending, m.lagErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "deliveries_in_flight",
			Help: "Deliveries this replica is working on.",
		}, func() float64 {
			if f := m.state.Load().InFlight; f != nil {
				return float64(f())
			}
			return 0
		}),
		regionCollector{m: m},
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.requests.WithLabelValues(worker.OutcomeRecovered, "")
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(r)
		m.requests.WithLabelValues(worker.OutcomeDeadLettered, r)
	}
	for _, c := range retryCauses {
		m.retries.WithLabelValues(c)
	}
	return m, nil
}

// SetState sets the funcs the scrape-time gauges read. Call it once the
// pool and its collaborators exist; until then those gauges read 0.
func (m *Metrics) SetState(s State) { m.state.Store(&s) }

// Outcome counts one delivery's end.
func (m *Metrics) Outcome(o worker.Outcome) {
	reason := label(o.Reason)
	m.requests.WithLabelValues(label(o.Kind), reason).Inc()
	m.totals.outcome(o.Kind, reason)
	if o.Kind == worker.OutcomeDeadLettered {
		m.deadLetters.WithLabelValues(reason).Inc()
		m.headersRefused.Add(float64(o.HeadersRefused))
	}
}

// Call counts one API call and its duration.
func (m *Metrics) Call(c worker.Call) {
	class := label(c.Class)
	status := statusLabel(c.Status)
	m.calls.WithLabelValues(status, class).Inc()
	m.totals.call(status)
	m.callSeconds.WithLabelValues(class).Observe(c.Duration.Seconds())
}

// Retry counts one retry.
func (m *Metrics) Retry(cause string, _ time.Duration) {
	m.retries.WithLabelValues(label(cause)).Inc()
	m.totals.retry(label(cause))
}

// setLag records the consumer's figures.
func (m *Metrics) setLag(pending, ackPending uint64) {
	m.pending.Set(float64(pending))
	m.ackPending.Set(float64(ackPending))
}

// statusLabel is the HTTP status as a label: "200", "429", …; "error" for
// no answer (transport error, timeout) or anything that is not a status.
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return strconv.Itoa(code)
}

// label keeps a label value within a bounded vocabulary: the pool only
// reports snake_case constants, and anything else (a future free-text
// reason) becomes "other" rather than a new series per value.
func label(s string) string {
	if len(s) > 32 {
		return "other"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return "other"
		}
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// The per-region gauges, read at scrape time. Breaker and pause are state
// sets (the OpenMetrics StateSet convention in the text format): one
// series per state, 1 for the current one and 0 for the others, so an
// alert matches a state by name and a dashboard shows each state's share
// without decoding numbers.
var (
	breakerDesc = prometheus.NewDesc(Namespace+"_breaker_state",
		"API circuit breaker of a region by state (closed, half_open, open): 1 for the current state, 0 for the others. While open, no new requests for the region are taken.",
		[]string{"region", "state"}, nil)
	pauseDesc = prometheus.NewDesc(Namespace+"_pause_state",
		"Whether a region takes new calls, by state: none, throttle (a Retry-After pause, seconds) or credentials (a 401, a configuration answer or a run of 403s, until a probe call succeeds): 1 for the current state, 0 for the others.",
		[]string{"region", "state"}, nil)
	rateDesc = prometheus.NewDesc(Namespace+"_api_rate_limit_per_second",
		"Current API rate limit of a region in requests per second (lowered by throttles, raised back by successes); 0 = no limit.",
		[]string{"region"}, nil)
)

// regionCollector reports State.Regions.
type regionCollector struct{ m *Metrics }

func (c regionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- breakerDesc
	ch <- pauseDesc
	ch <- rateDesc
}

func (c regionCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.state.Load().Regions
	if f == nil {
		return
	}
	for _, r := range f() {
		for _, s := range breakerStates {
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, b2f(r.Breaker == s), r.Region, s.String())
		}
		for _, s := range pauseStates {
			ch <- prometheus.MustNewConstMetric(pauseDesc, prometheus.GaugeValue, b2f(r.Pause == s), r.Region, s.String())
		}
		ch <- prometheus.MustNewConstMetric(rateDesc, prometheus.GaugeValue, r.RateLimit, r.Region)
	}
}
