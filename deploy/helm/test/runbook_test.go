package test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

const (
	runbookFile = "../../../docs/runbook.md"
	runbookURL  = "https://github.com/codearts-recover-worker/codearts-recover-worker/blob/main/docs/runbook.md"
)

// alertRule is the part of an alerting rule the runbook links use.
type alertRule struct {
	Alert       string            `json:"alert"`
	Annotations map[string]string `json:"annotations"`
}

func alertsOf(t *testing.T, spec []byte) []alertRule {
	t.Helper()
	var doc struct {
		Groups []struct {
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(spec, &doc))
	var out []alertRule
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// anchors are the GitHub anchors of the Markdown headings of doc.
func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

// Every alert the chart ships links its section of docs/runbook.md, and
// every link inside the runbook lands on a heading.
func TestEveryAlertHasARunbookSection(t *testing.T) {
	doc, err := os.ReadFile(runbookFile)
	require.NoError(t, err)
	have := anchors(string(doc))
	raw, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	for _, a := range alertsOf(t, raw) {
		u := a.Annotations["runbook_url"]
		require.NotEmpty(t, u, "alert %s has no runbook_url", a.Alert)
		page, anchor, ok := strings.Cut(u, "#")
		require.True(t, ok, "%s: %s has no anchor", a.Alert, u)
		require.Equal(t, runbookURL, page, a.Alert)
		require.True(t, have[anchor], "alert %s: docs/runbook.md has no heading for #%s (headings: %v)", a.Alert, anchor, have)
		require.Equal(t, strings.ToLower(a.Alert), anchor, "the section is named after the alert")
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(doc), -1) {
		require.True(t, have[m[1]], "runbook link #%s has no heading", m[1])
	}
}

// prometheusRule.runbookURL points the links at an operator's own copy.
func TestRunbookURLOverride(t *testing.T) {
	m := mustRender(t, "--set", "prometheusRule.enabled=true", "--api-versions", "monitoring.coreos.com/v1",
		"--set", "prometheusRule.runbookURL=https://wiki.example.com/recover/runbook")
	var pr prometheusRule
	m.decode(t, "PrometheusRule", &pr)
	spec, err := json.Marshal(pr.Spec)
	require.NoError(t, err)
	for _, a := range alertsOf(t, spec) {
		require.Equal(t, "https://wiki.example.com/recover/runbook#"+strings.ToLower(a.Alert), a.Annotations["runbook_url"])
	}
}
