// Package oldest decodes the chart's manifests, rendered for the oldest
// Kubernetes the chart supports (Chart.yaml kubeVersion >=1.25), strictly
// into that version's types (k8s.io/api v0.25): a field added in a later
// Kubernetes (the PDB's unhealthyPodEvictionPolicy, beta in 1.27) fails
// here, as the 1.25 API server would refuse it. It is a module of its own
// because one go.mod holds one version of k8s.io/api; ../ checks the
// newest. `make chart-test` runs both.
package oldest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir     = "../../codearts-recover-worker"
	oldestKube   = "1.25.0"
	fullValues   = chartDir + "/ci/full-values.yaml"
	productionEx = chartDir + "/examples/production-values.yaml"
)

// customKinds are operators' objects (Prometheus Operator, KEDA): not in
// k8s.io/api, checked by the tests in ../.
var customKinds = []string{"ServiceMonitor", "PrometheusRule", "ScaledObject"}

func typed(kind string) any {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}
	case "Service":
		return &corev1.Service{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "ConfigMap":
		return &corev1.ConfigMap{}
	case "Secret":
		return &corev1.Secret{}
	case "Pod":
		return &corev1.Pod{}
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	}
	return nil
}

func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := filepath.Abs("../../../../bin/helm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("no helm: run `make chart-test` (it installs the pinned helm into ./bin) or set HELM")
	}
	return h
}

// render runs helm template for Kubernetes 1.25 and returns each manifest's
// kind, name and YAML.
func render(t *testing.T, args ...string) [][3]string {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", "rel", chartDir, "--namespace", "recover", "--kube-version", oldestKube}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template %v: %s", args, stderr.String())
	}
	var out [][3]string
	for _, doc := range strings.Split(stdout.String(), "\n---") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v: %s", err, doc)
		}
		if meta.Kind != "" {
			out = append(out, [3]string{meta.Kind, meta.Metadata.Name, doc})
		}
	}
	return out
}

func TestManifestsDecodeStrictlyOnTheOldestKubernetes(t *testing.T) {
	renders := map[string][]string{
		"defaults":    nil,
		"full values": {"-f", fullValues, "--api-versions", "monitoring.coreos.com/v1"},
		"production":  {"-f", productionEx},
		"hpa":         {"--set", "autoscaling.enabled=true", "--set", "networkPolicy.enabled=true"},
		"dev secret":  {"--set", "credentials.mode=devSecret", "--set", "credentials.devSecret.ak=AK", "--set", "credentials.devSecret.sk=SK"},
	}
	seen := map[string]bool{}
	for name, args := range renders {
		t.Run(name, func(t *testing.T) {
			for _, o := range render(t, args...) {
				kind, objName, doc := o[0], o[1], o[2]
				seen[kind] = true
				if slices.Contains(customKinds, kind) {
					continue
				}
				v := typed(kind)
				if v == nil {
					t.Fatalf("%s %s: a kind the test does not know; add its type", kind, objName)
				}
				if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
					t.Errorf("%s %s does not decode as Kubernetes %s has it: %v", kind, objName, oldestKube, err)
				}
			}
		})
	}
	for _, k := range []string{"Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "Pod", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
		if !seen[k] {
			t.Errorf("no render made a %s: the strict decode never saw one", k)
		}
	}
}

// The decode above can fail: a field 1.25 does not have is refused.
func TestStrictDecodeRefusesALaterField(t *testing.T) {
	doc := "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec:\n  maxUnavailable: 1\n  unhealthyPodEvictionPolicy: AlwaysAllow\n"
	var pdb policyv1.PodDisruptionBudget
	if err := yaml.UnmarshalStrict([]byte(doc), &pdb); err == nil || !strings.Contains(err.Error(), "unhealthyPodEvictionPolicy") {
		t.Fatalf("want an error naming unhealthyPodEvictionPolicy, got %v", err)
	}
}
