package ops_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// The Grafana dashboard and the alerting rules under deploy/ (the chart
// ships copies that a chart test keeps equal) query the worker's metrics
// by name, label and label value. These tests keep them from drifting
// apart from what /metrics really serves.
const (
	dashboardPath = "../../deploy/grafana/codearts-recover-worker.json"
	rulesPath     = "../../deploy/prometheus/codearts-recover-worker-rules.yaml"
)

// targetLabels are attached by Prometheus when it scrapes (job, instance)
// and by Kubernetes service discovery (the rest), so no /metrics output
// has them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

// query is one PromQL expression and where it comes from.
type query struct {
	where string
	expr  string
}

// exposition is what one scrape of /metrics shows.
type exposition struct {
	// types maps a family name to its TYPE (counter, gauge, histogram…).
	types map[string]string
	// samples maps a sample name (a histogram's _bucket, _sum and _count
	// apart) to its labels and the values seen for each.
	samples map[string]map[string][]string
}

// scrapeAll returns /metrics after one event of each kind, so that every
// labelled series and every label value the pool reports is there.
func scrapeAll(t *testing.T) exposition {
	t.Helper()
	b := setupMetrics(t)
	feed(b.metrics)
	const job = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
	m := b.metrics
	m.Outcome(worker.Outcome{Kind: worker.OutcomeAckFailed, Reason: worker.OutcomeRecovered, JobID: job})
	m.Outcome(worker.Outcome{Kind: worker.OutcomeLeaseLost, JobID: job})
	for _, c := range []worker.Call{
		{JobID: job, Status: 401, Class: "unauthorized", Duration: time.Millisecond},
		{JobID: job, Status: 403, Class: "forbidden", Duration: time.Millisecond},
		{JobID: job, Status: 0, Class: "canceled", Duration: time.Millisecond},
	} {
		m.Call(c)
	}
	m.SetState(ops.State{
		InFlight: func() int { return 3 },
		Regions: func() []ops.RegionState {
			return []ops.RegionState{
				{Region: "cn-north-4", Breaker: retry.BreakerHalfOpen, Pause: ops.PauseCredentials, RateLimit: 20},
				{Region: "ap-southeast-1", Breaker: retry.BreakerOpen, Pause: ops.PauseThrottle},
			}
		},
	})
	return parseExposition(t, b.scrape(t))
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?`)
)

// parseExposition reads the Prometheus text format.
func parseExposition(t *testing.T, body string) exposition {
	t.Helper()
	e := exposition{types: map[string]string{}, samples: map[string]map[string][]string{}}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.types[f[2]] = f[3]
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		require.NotNil(t, m, "not a sample: %q", line)
		labels := e.samples[m[1]]
		if labels == nil {
			labels = map[string][]string{}
			e.samples[m[1]] = labels
		}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(labels[p[1]], p[2]) {
				labels[p[1]] = append(labels[p[1]], p[2])
			}
		}
	}
	require.NotEmpty(t, e.samples)
	return e
}

// family is the metric family a sample name belongs to: itself, or the
// histogram it is the _bucket, _sum or _count of.
func (e exposition) family(sample string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(sample, suffix); ok && e.types[base] == "histogram" {
			return base
		}
	}
	return sample
}

func TestDashboardAndRulesQueryExposedMetrics(t *testing.T) {
	e := scrapeAll(t)
	queries := append(dashboardQueries(t), ruleQueries(t)...)
	var problems []string
	used := map[string]bool{}
	for _, q := range queries {
		problems = append(problems, checkQuery(e, q)...)
		for _, r := range metricRefs(q.expr) {
			used[e.family(r.name)] = true
		}
	}
	require.Empty(t, problems, "queries that /metrics cannot answer")

	// Every metric the worker exports is on the dashboard or in an alert:
	// a new metric gets a panel.
	for family := range e.types {
		if strings.HasPrefix(family, ops.Namespace+"_") {
			require.True(t, used[family], "%s is exported but neither the dashboard nor the rules show it", family)
		}
	}
}

func TestDashboardIsPortable(t *testing.T) {
	d := readDashboard(t)
	require.GreaterOrEqual(t, d.SchemaVersion, 39)
	require.NotEmpty(t, d.UID)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	require.Equal(t, map[string]string{"datasource": "datasource", "namespace": "query", "job": "query"}, vars)

	selector := regexp.MustCompile(`^\{[^}]*\}`)
	for _, p := range d.panels() {
		if len(p.Targets) == 0 {
			continue
		}
		require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q: the data source is the variable, so the dashboard loads on any Grafana", p.Title)
		for _, tg := range p.Targets {
			require.Equal(t, "${datasource}", tg.Datasource.UID, "panel %q", p.Title)
			refs := metricRefs(tg.Expr)
			require.NotEmpty(t, refs, "panel %q shows none of the worker's metrics", p.Title)
			for _, r := range refs {
				sel := selector.FindString(tg.Expr[r.end:])
				for _, want := range []string{`namespace=~"$namespace"`, `job=~"$job"`} {
					require.Contains(t, sel, want, "panel %q: %s does not follow the dashboard's variables", p.Title, r.name)
				}
			}
		}
	}
}

func TestRulesHaveTheDocumentedAlerts(t *testing.T) {
	var alerts []string
	for _, q := range ruleQueries(t) {
		alerts = append(alerts, strings.TrimPrefix(q.where, "alert "))
	}
	require.ElementsMatch(t, []string{
		"RecoverWorkerDown", "RecoverWorkerPaused", "RecoverWorkerBreakerOpen",
		"RecoverWorkerDeadLettersRising", "RecoverWorkerLagNotShrinking", "RecoverWorkerLagStale",
	}, alerts)
}

// TestCheckQueryFindsMistakes shows that checkQuery fails on what it is
// there to catch.
func TestCheckQueryFindsMistakes(t *testing.T) {
	e := scrapeAll(t)
	tests := []struct {
		name string
		give string
		want []string // substrings of the problems, in order; none = clean
	}{
		{name: "clean aggregation", give: `sum by (namespace, cause) (rate(codearts_recover_retries_total{job=~"$job", cause=~"throttled|transient"}[5m]))`},
		{name: "clean histogram quantile", give: `histogram_quantile(0.9, sum by (le, class) (rate(codearts_recover_api_call_duration_seconds_bucket{class="success"}[5m])))`},
		{name: "name inside a string", give: `count(up{job="codearts_recover_in_a_string"}) or vector(0)`},
		{name: "clean label_values", give: `label_values(codearts_recover_build_info{namespace=~"$namespace"}, job)`},
		{name: "unknown metric", give: `sum(rate(codearts_recover_recovered_total[5m]))`, want: []string{"codearts_recover_recovered_total is not in /metrics"}},
		{name: "bare histogram name", give: `rate(codearts_recover_api_call_duration_seconds[5m])`, want: []string{"codearts_recover_api_call_duration_seconds is not in /metrics"}},
		{name: "unknown selector label", give: `codearts_recover_api_calls_total{status="200"}`, want: []string{`label status`}},
		{name: "unknown label value", give: `codearts_recover_deliveries_total{outcome=~"recovered|dead_letered"}`, want: []string{`outcome="dead_letered"`}},
		{name: "unknown value of a negative matcher", give: `codearts_recover_pause_state{state!="throttled"}`, want: []string{`state="throttled"`}},
		{name: "state set by number", give: `codearts_recover_breaker_state{state="2"}`, want: []string{`state="2"`}},
		{name: "unknown by label", give: `sum by (reason) (rate(codearts_recover_api_calls_total[5m]))`, want: []string{"by (reason): label reason is not on codearts_recover_api_calls_total"}},
		{name: "unknown by label, postfix form", give: `sum(rate(codearts_recover_retries_total[5m])) by (class)`, want: []string{"label class is not on codearts_recover_retries_total"}},
		{name: "le on a histogram's _sum", give: `sum by (le) (rate(codearts_recover_api_call_duration_seconds_sum[5m]))`, want: []string{"label le is not on codearts_recover_api_call_duration_seconds_sum"}},
		{name: "unknown on label", give: `max by (pod) (codearts_recover_pause_state) * on (reason) group_left max(codearts_recover_breaker_state)`, want: []string{"on (reason)", "on (reason)"}},
		{name: "unknown label_values label", give: `label_values(codearts_recover_build_info, region)`, want: []string{"label_values: label region"}},
		{name: "unbalanced", give: `sum(rate(codearts_recover_retries_total[5m])`, want: []string{"unbalanced"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkQuery(e, query{where: "test", expr: tt.give})
			require.Len(t, got, len(tt.want), "problems: %q", got)
			for i, w := range tt.want {
				require.Contains(t, got[i], w)
			}
		})
	}
}

// metricRef is one reference to a worker metric in an expression:
// expr[start:end] is its name.
type metricRef struct {
	name       string
	start, end int
}

var metricName = regexp.MustCompile(ops.Namespace + `_[a-zA-Z0-9_:]*`)

// metricRefs lists the worker metrics an expression names outside string
// literals.
func metricRefs(expr string) []metricRef {
	str := stringMask(expr)
	var out []metricRef
	for _, m := range metricName.FindAllStringIndex(expr, -1) {
		if str[m[0]] || (m[0] > 0 && isIdent(expr[m[0]-1])) {
			continue
		}
		out = append(out, metricRef{name: expr[m[0]:m[1]], start: m[0], end: m[1]})
	}
	return out
}

var (
	matcher     = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	plainValues = regexp.MustCompile(`^[a-zA-Z0-9_.]+(\|[a-zA-Z0-9_.]+)*$`)
	grouping    = regexp.MustCompile(`\b(by|without|on|ignoring)\s*\(`)
	labelValues = regexp.MustCompile(`label_values\(\s*(` + ops.Namespace + `_[a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// checkQuery lists what in q the exposition cannot answer: a metric it does
// not serve (a histogram is queried through its _bucket, _sum or _count
// series: the family's bare name selects nothing), a label in a selector,
// a by/without/on/ignoring clause or label_values that the metric does not
// have, or a plain label value (a|b|c) that it never takes.
func checkQuery(e exposition, q query) []string {
	var problems []string
	report := func(format string, args ...any) {
		problems = append(problems, q.where+": "+fmt.Sprintf(format, args...))
	}
	pairs, ok := brackets(q.expr)
	if !ok {
		report("unbalanced brackets in %q", q.expr)
		return problems
	}
	refs := metricRefs(q.expr)
	has := func(sample, label string) bool {
		_, ok := e.samples[sample][label]
		return ok || slices.Contains(targetLabels, label)
	}

	for _, r := range refs {
		labels, ok := e.samples[r.name]
		if !ok {
			report("%s is not in /metrics", r.name)
			continue
		}
		rest := strings.TrimLeft(q.expr[r.end:], " ")
		if !strings.HasPrefix(rest, "{") {
			continue
		}
		open := len(q.expr) - len(rest)
		for _, m := range matcher.FindAllStringSubmatch(q.expr[open:pairs[open]], -1) {
			label, value := m[1], m[3]
			if !has(r.name, label) {
				report("label %s is not on %s", label, r.name)
				continue
			}
			if _, own := labels[label]; !own || !plainValues.MatchString(value) {
				continue // a target label, a variable or a real regex
			}
			for _, v := range strings.Split(value, "|") {
				if !slices.Contains(labels[label], v) {
					report("%s{%s=%q}: the worker never reports that value (it has %q)", r.name, label, v, labels[label])
				}
			}
		}
	}

	str := stringMask(q.expr)
	for _, g := range grouping.FindAllStringSubmatchIndex(q.expr, -1) {
		if str[g[0]] {
			continue
		}
		keyword, open := q.expr[g[2]:g[3]], g[1]-1
		var labels []string
		for l := range strings.SplitSeq(q.expr[open+1:pairs[open]], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		// The part of the expression the clause applies to: an aggregation's
		// argument (after the clause, or before it in the postfix form), or
		// for on/ignoring both sides of the operator.
		from, to := 0, len(q.expr)
		if keyword == "by" || keyword == "without" {
			after := pairs[open] + 1
			for after < len(q.expr) && q.expr[after] == ' ' {
				after++
			}
			before := g[0] - 1
			for before >= 0 && q.expr[before] == ' ' {
				before--
			}
			switch {
			case after < len(q.expr) && q.expr[after] == '(':
				from, to = after, pairs[after]
			case before >= 0 && q.expr[before] == ')':
				from, to = pairs[before], before
			default:
				report("%s (...): cannot tell what it applies to", keyword)
				continue
			}
		}
		for _, r := range refs {
			if _, known := e.samples[r.name]; !known || r.start < from || r.end > to {
				continue // an unknown metric is reported once, above
			}
			for _, l := range labels {
				if !has(r.name, l) {
					report("%s (%s): label %s is not on %s", keyword, strings.Join(labels, ", "), l, r.name)
				}
			}
		}
	}

	for _, m := range labelValues.FindAllStringSubmatch(q.expr, -1) {
		if !has(m[1], m[2]) {
			report("label_values: label %s is not on %s", m[2], m[1])
		}
	}
	return problems
}

// stringMask marks the bytes of expr that are inside a string literal,
// quotes included.
func stringMask(expr string) []bool {
	mask := make([]bool, len(expr))
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if quote == 0 {
			if c == '"' || c == '\'' || c == '`' {
				quote, mask[i] = c, true
			}
			continue
		}
		mask[i] = true
		switch {
		case c == '\\' && quote != '`' && i+1 < len(expr):
			i++
			mask[i] = true
		case c == quote:
			quote = 0
		}
	}
	return mask
}

// brackets pairs the (), {} and [] of expr outside string literals: each
// index of an opening bracket maps to its closing one and back. ok is
// false when they do not balance.
func brackets(expr string) (pairs map[int]int, ok bool) {
	str := stringMask(expr)
	pairs = map[int]int{}
	var stack []int
	closing := map[byte]byte{')': '(', '}': '{', ']': '['}
	for i := 0; i < len(expr); i++ {
		if str[i] {
			continue
		}
		switch c := expr[i]; c {
		case '(', '{', '[':
			stack = append(stack, i)
		case ')', '}', ']':
			if len(stack) == 0 || expr[stack[len(stack)-1]] != closing[c] {
				return nil, false
			}
			open := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			pairs[open], pairs[i] = i, open
		}
	}
	return pairs, len(stack) == 0
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dashboard is the part of the Grafana dashboard JSON the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "…"}
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// panels lists every panel, those of collapsed rows too.
func (d dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

// dashboardQueries lists the expressions of the panels and of the
// template variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := readDashboard(t)
	var out []query
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			out = append(out, query{where: fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case string:
			if v.Type == "query" {
				out = append(out, query{where: "variable " + v.Name, expr: q})
			}
		case map[string]any:
			s, _ := q["query"].(string)
			out = append(out, query{where: "variable " + v.Name, expr: s})
		}
	}
	require.NotEmpty(t, out)
	return out
}

// ruleQueries lists the expressions of the alerting rules, by alert name.
func ruleQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(b, &f))
	var out []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Alert == "" {
				name = "record " + r.Record
			}
			require.NotEmpty(t, r.Expr, name)
			out = append(out, query{where: name, expr: r.Expr})
		}
	}
	require.NotEmpty(t, out)
	return out
}
