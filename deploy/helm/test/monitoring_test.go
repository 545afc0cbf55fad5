package test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The dashboard and the rules live under deploy/ for people who load them
// by hand; the chart holds copies because Helm reads only its own files.
const (
	dashboardFile      = "../../grafana/codearts-recover-worker.json"
	chartDashboardFile = chartDir + "/dashboards/codearts-recover-worker.json"
	rulesFile          = "../../prometheus/codearts-recover-worker-rules.yaml"
	chartRulesFile     = chartDir + "/rules/codearts-recover-worker-rules.yaml"
)

func TestChartCopiesMatchDeploy(t *testing.T) {
	for original, chartCopy := range map[string]string{dashboardFile: chartDashboardFile, rulesFile: chartRulesFile} {
		want, err := os.ReadFile(original)
		require.NoError(t, err)
		got, err := os.ReadFile(chartCopy)
		require.NoError(t, err)
		// Paths from the repository root, for the message.
		o, c := filepath.Join("deploy/helm/test", original), filepath.Join("deploy/helm/test", chartCopy)
		require.True(t, bytes.Equal(want, got), "%s differs from %s: edit the original, then `cp %s %s`", c, o, o, c)
	}
}

func TestGrafanaDashboardConfigMap(t *testing.T) {
	want, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	tests := []struct {
		name            string
		give            []string
		wantNone        bool
		wantNamespace   string
		wantLabel       [2]string
		wantAnnotations map[string]string
		wantErr         string
	}{
		{name: "off by default", wantNone: true},
		{
			name:          "sidecar defaults",
			give:          []string{"--set", "grafanaDashboard.enabled=true"},
			wantNamespace: namespace, wantLabel: [2]string{"grafana_dashboard", "1"},
		},
		{
			name: "own label, namespace and folder",
			give: []string{
				"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring",
				"--set", "grafanaDashboard.labelKey=example.com/dashboard", "--set", "grafanaDashboard.labelValue=recover",
				"--set", "grafanaDashboard.annotations.grafana_folder=CodeArts",
			},
			wantNamespace: "monitoring", wantLabel: [2]string{"example.com/dashboard", "recover"},
			wantAnnotations: map[string]string{"grafana_folder": "CodeArts"},
		},
		{
			name:          "label value given as a number",
			give:          []string{"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.labelValue=2"},
			wantNamespace: namespace, wantLabel: [2]string{"grafana_dashboard", "2"},
		},
		{
			name:    "label key that Kubernetes rejects",
			give:    []string{"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.labelKey=grafana dashboard"},
			wantErr: "grafanaDashboard/labelKey",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := render(t, tt.give...)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			o := m.named("ConfigMap", fullname+"-dashboard")
			if tt.wantNone {
				require.Nil(t, o)
				return
			}
			require.NotNil(t, o, "no dashboard ConfigMap in %v", m.kinds())
			var cm corev1.ConfigMap
			require.NoError(t, yaml.UnmarshalStrict(o.YAML, &cm))
			require.Equal(t, tt.wantNamespace, cm.Namespace)
			require.Equal(t, tt.wantLabel[1], cm.Labels[tt.wantLabel[0]])
			require.Equal(t, release, cm.Labels["app.kubernetes.io/instance"])
			for k, v := range tt.wantAnnotations {
				require.Equal(t, v, cm.Annotations[k], k)
			}

			// The sidecar writes each key to a file and loads the *.json ones.
			require.Len(t, cm.Data, 1)
			got, ok := cm.Data["codearts-recover-worker.json"]
			require.True(t, ok, "data keys: %v", cm.Data)
			require.Equal(t, string(bytes.TrimSpace(want)), got, "the ConfigMap holds the dashboard as is")
			var dash struct {
				UID        string `json:"uid"`
				Templating struct {
					List []struct{ Name, Type string } `json:"list"`
				} `json:"templating"`
			}
			require.NoError(t, json.Unmarshal([]byte(got), &dash))
			require.Equal(t, "codearts-recover-worker", dash.UID)
			require.Equal(t, "datasource", dash.Templating.List[0].Type, "the data source is a variable, so the dashboard loads on any Grafana")

			require.Equal(t, fullname, m.configMap(t).Name, "the worker's own ConfigMap is still there")
		})
	}
}

// prometheusRule is the part of a PrometheusRule the chart sets.
type prometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

func TestPrometheusRuleNeedsCapability(t *testing.T) {
	on := []string{"--set", "prometheusRule.enabled=true", "--set", "prometheusRule.labels.release=prometheus"}
	operator := []string{"--api-versions", "monitoring.coreos.com/v1"}
	tests := []struct {
		name     string
		give     []string
		wantRule bool
	}{
		{name: "off by default"},
		{name: "capability without enabled", give: operator},
		{name: "enabled without the Prometheus Operator", give: on},
		{name: "enabled with the Prometheus Operator", give: append(append([]string{}, on...), operator...), wantRule: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.give...)
			require.Equal(t, tt.wantRule, m.has("PrometheusRule"))
			if !tt.wantRule {
				return
			}
			var pr prometheusRule
			m.decode(t, "PrometheusRule", &pr)
			require.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
			require.Equal(t, fullname, pr.Metadata.Name)
			require.Equal(t, namespace, pr.Metadata.Namespace)
			require.Equal(t, "prometheus", pr.Metadata.Labels["release"], "prometheusRule.labels reach the ruleSelector")

			// spec is the rules file: the same groups, alerts and expressions.
			raw, err := os.ReadFile(rulesFile)
			require.NoError(t, err)
			want, err := yaml.YAMLToJSON(raw)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(pr.Spec))
			var spec struct {
				Groups []struct {
					Rules []struct {
						Alert string `json:"alert"`
					} `json:"rules"`
				} `json:"groups"`
			}
			require.NoError(t, json.Unmarshal(pr.Spec, &spec))
			require.Len(t, spec.Groups, 1)
			require.Len(t, spec.Groups[0].Rules, 6)
		})
	}
}
