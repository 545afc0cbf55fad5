package test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// operator is the capability the Prometheus Operator's objects need.
var operator = []string{"--api-versions", "monitoring.coreos.com/v1"}

// customKinds are the objects of operators the chart renders for (their
// types are not in k8s.io/api): decoded by the tests of each toggle.
var customKinds = []string{"ServiceMonitor", "PrometheusRule", "ScaledObject"}

// typed is a new typed Kubernetes object for kind, nil for a kind the
// chart is not expected to render.
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

// Every manifest of every render decodes strictly into the typed object of
// the newest Kubernetes the chart supports (k8s.io/api of this module): a
// misspelt or misplaced field, or one this Kubernetes does not know, fails.
// The oldest supported version (1.25) is checked the same way by the
// module in ./oldest, with k8s.io/api v0.25.
func TestEveryManifestDecodesStrictly(t *testing.T) {
	renders := map[string][]string{
		"defaults":    nil,
		"full values": append([]string{"-f", fullValues}, operator...),
		"production":  {"-f", chartDir + "/examples/production-values.yaml"},
		"hpa":         {"--set", "autoscaling.enabled=true", "--set", "networkPolicy.enabled=true"},
		"dev secret":  {"--set", "credentials.mode=devSecret", "--set", "credentials.devSecret.ak=AK", "--set", "credentials.devSecret.sk=SK"},
	}
	seen := map[string]bool{}
	for name, args := range renders {
		t.Run(name, func(t *testing.T) {
			for _, o := range mustRender(t, args...) {
				seen[o.Kind] = true
				if slices.Contains(customKinds, o.Kind) {
					continue
				}
				v := typed(o.Kind)
				require.NotNil(t, v, "%s %s: a kind the test does not know; add its type", o.Kind, o.Name)
				require.NoError(t, yaml.UnmarshalStrict(o.YAML, v), "%s %s", o.Kind, o.Name)
			}
		})
	}
	for _, k := range []string{"Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "Pod", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
		require.True(t, seen[k], "no render made a %s: the strict decode never saw one", k)
	}
}

// podLabels are the labels of the workers' pods.
func podLabels(t *testing.T, m manifests) labels.Set {
	t.Helper()
	return labels.Set(m.deployment(t).Spec.Template.Labels)
}

// selects reports whether sel picks pods with labels l.
func selects(t *testing.T, sel *metav1.LabelSelector, l labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return s.Matches(l)
}

// Each toggle, switched on with every other value at its default, makes an
// object that reaches what it is for.
func TestTogglesConnect(t *testing.T) {
	t.Run("metrics Service reaches the metrics port", func(t *testing.T) {
		m := mustRender(t)
		var svc corev1.Service
		m.decode(t, "Service", &svc)
		require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels(t, m)), "the Service selects the workers")
		w := worker(t, m.deployment(t))
		var port *corev1.ContainerPort
		for i := range w.Ports {
			if w.Ports[i].Name == svc.Spec.Ports[0].TargetPort.String() {
				port = &w.Ports[i]
			}
		}
		require.NotNil(t, port, "the Service's targetPort names a container port")
		require.Equal(t, ":8080", m.configMap(t).Data["RECOVER_HTTP_ADDR"], "the worker listens where the port says")
		require.EqualValues(t, 8080, port.ContainerPort)
	})

	t.Run("serviceMonitor scrapes the metrics Service", func(t *testing.T) {
		m := mustRender(t, append([]string{"--set", "metrics.serviceMonitor.enabled=true"}, operator...)...)
		var sm struct {
			Spec struct {
				Selector          metav1.LabelSelector `json:"selector"`
				NamespaceSelector struct {
					MatchNames []string `json:"matchNames"`
				} `json:"namespaceSelector"`
				Endpoints []struct {
					Port string `json:"port"`
					Path string `json:"path"`
				} `json:"endpoints"`
			} `json:"spec"`
		}
		o := m.named("ServiceMonitor", fullname)
		require.NotNil(t, o, "kinds: %v", m.kinds())
		require.NoError(t, yaml.Unmarshal(o.YAML, &sm)) // the part the chart sets; the operator's type is not here
		var svc corev1.Service
		m.decode(t, "Service", &svc)
		require.True(t, selects(t, &sm.Spec.Selector, labels.Set(svc.Labels)), "the ServiceMonitor selects the metrics Service")
		if names := sm.Spec.NamespaceSelector.MatchNames; len(names) > 0 {
			require.Contains(t, names, namespace)
		}
		require.Len(t, sm.Spec.Endpoints, 1)
		require.Equal(t, svc.Spec.Ports[0].Name, sm.Spec.Endpoints[0].Port)
		require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
	})

	t.Run("prometheusRule alerts on metrics the worker exports", func(t *testing.T) {
		m := mustRender(t, append([]string{"--set", "prometheusRule.enabled=true"}, operator...)...)
		var pr prometheusRule
		m.decode(t, "PrometheusRule", &pr)
		var spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		}
		require.NoError(t, json.Unmarshal(pr.Spec, &spec))
		exported := documentedMetrics(t)
		for _, r := range spec.Groups[0].Rules {
			for _, name := range metricNames.FindAllString(r.Expr, -1) {
				require.True(t, exported[name], "%s queries %s, which the worker does not export (docs/metrics.md)", r.Alert, name)
			}
		}
		// promtool accepts the rendered groups as Prometheus would load them.
		groups, err := yaml.JSONToYAML(pr.Spec)
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "rules.yaml")
		require.NoError(t, os.WriteFile(file, groups, 0o600))
		out, err := exec.Command(promtoolBin(t), "check", "rules", file).CombinedOutput()
		require.NoError(t, err, "promtool check rules on the rendered PrometheusRule:\n%s", out)
	})

	t.Run("grafanaDashboard shows metrics the worker exports", func(t *testing.T) {
		m := mustRender(t, "--set", "grafanaDashboard.enabled=true")
		var cm *corev1.ConfigMap
		for _, o := range m {
			if o.Kind == "ConfigMap" && o.Name != fullname {
				cm = &corev1.ConfigMap{}
				require.NoError(t, yaml.UnmarshalStrict(o.YAML, cm))
			}
		}
		require.NotNil(t, cm, "the dashboard's ConfigMap")
		exported := documentedMetrics(t)
		var n int
		for _, body := range cm.Data {
			for _, name := range metricNames.FindAllString(body, -1) {
				n++
				name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				require.True(t, exported[name], "the dashboard queries %s, which the worker does not export (docs/metrics.md)", name)
			}
		}
		require.Positive(t, n)
	})

	t.Run("keda scales the Deployment on its consumer", func(t *testing.T) {
		m := mustRender(t, "--set", "keda.enabled=true", "--set", "keda.natsMonitoringEndpoint=nats-headless.nats.svc:8222")
		var so scaledObject
		m.decode(t, "ScaledObject", &so)
		require.Equal(t, m.deployment(t).Name, so.Spec.ScaleTargetRef.Name)
		cm := m.configMap(t)
		tr := so.Spec.Triggers[0].Metadata
		// The worker's stream and consumer: the chart passes the defaults
		// through or leaves them to the worker, whose defaults they are.
		require.Equal(t, valueOr(cm.Data["RECOVER_STREAM"], "CODEARTS_RECOVER"), tr["stream"])
		require.Equal(t, valueOr(cm.Data["RECOVER_CONSUMER"], "recover-worker"), tr["consumer"])
		require.Nil(t, m.deployment(t).Spec.Replicas, "KEDA owns the replica count")
	})

	t.Run("autoscaling scales the Deployment on a CPU request", func(t *testing.T) {
		m := mustRender(t, "--set", "autoscaling.enabled=true")
		h := m.hpa(t)
		d := m.deployment(t)
		require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
		require.Equal(t, "apps/v1", h.Spec.ScaleTargetRef.APIVersion)
		require.Equal(t, d.Name, h.Spec.ScaleTargetRef.Name)
		require.Nil(t, d.Spec.Replicas)
		_, ok := worker(t, d).Resources.Requests[corev1.ResourceCPU]
		require.True(t, ok, "a CPU utilization target needs a CPU request")
	})

	t.Run("networkPolicy covers the workers, the doctor and the metrics port", func(t *testing.T) {
		m := mustRender(t, "--set", "networkPolicy.enabled=true")
		np := m.networkPolicy(t)
		require.True(t, selects(t, &np.Spec.PodSelector, podLabels(t, m)), "the policy applies to the workers")
		doctor := m.named("Pod", fullname+"-doctor")
		require.NotNil(t, doctor)
		var pod corev1.Pod
		require.NoError(t, yaml.UnmarshalStrict(doctor.YAML, &pod))
		require.True(t, selects(t, &np.Spec.PodSelector, labels.Set(pod.Labels)), "and to the doctor, which must reach what they reach")
		var names []string
		for _, p := range worker(t, m.deployment(t)).Ports {
			names = append(names, p.Name)
		}
		require.Contains(t, names, np.Spec.Ingress[0].Ports[0].Port.String(), "ingress names a port the worker serves")
		require.Equal(t, []string{namespace}, natsNamespaces(np), "nats://nats:4222 is in the release's namespace")
	})
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// natsNamespaces lists the namespaces the NATS egress rule admits (by
// kubernetes.io/metadata.name), with the rule's CIDRs as "cidr:…".
func natsNamespaces(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, e := range np.Spec.Egress {
		if len(e.Ports) == 0 || e.Ports[0].Port.IntValue() != 4222 {
			continue
		}
		for _, peer := range e.To {
			switch {
			case peer.IPBlock != nil:
				out = append(out, "cidr:"+peer.IPBlock.CIDR)
			case peer.NamespaceSelector != nil:
				out = append(out, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
			}
		}
	}
	return out
}

// With the policy on, the egress to NATS follows nats.url: a NATS in
// another namespace (the official chart's nats.nats.svc) was cut off,
// since the rule admitted only the release's namespace; one the chart
// cannot place fails the render, naming the value that fixes it. The
// egress to the API admits config.endpoint's port.
func TestNetworkPolicyFollowsTheURLs(t *testing.T) {
	on := []string{"--set", "networkPolicy.enabled=true"}
	tests := []struct {
		name    string
		give    []string
		want    []string
		wantErr string
	}{
		{name: "default", want: []string{namespace}},
		{name: "service in another namespace", give: []string{"--set", "nats.url=nats://nats.nats.svc:4222"}, want: []string{"nats"}},
		{name: "short form", give: []string{"--set", "nats.url=tls://nats.messaging:4222"}, want: []string{"messaging"}},
		{name: "cluster domain and pods of a headless service", give: []string{"--set",
			`nats.url=nats://nats-0.nats-headless.msg.svc.cluster.local:4222\,nats://nats-1.nats-headless.msg.svc.cluster.local:4222\,nats://nats:4222`},
			want: []string{"msg", namespace}},
		{name: "full values", give: []string{"-f", fullValues}, want: []string{"nats"}},
		{name: "explicit selector wins", give: []string{"--set", "nats.url=nats://demo.nats.io:4222", "--set", "networkPolicy.nats.namespaceSelector.matchLabels.team=msg"}, want: []string{""}},
		{name: "outside the cluster by CIDR", give: []string{"--set", "nats.url=nats://10.20.0.5:4222", "--set", "networkPolicy.nats.cidrs={10.20.0.0/24}"}, want: []string{"cidr:10.20.0.0/24"}},
		{name: "an IP address", give: []string{"--set", "nats.url=nats://10.20.0.5:4222"}, wantErr: `cannot tell the namespace of NATS at "10.20.0.5" (nats.url): set networkPolicy.nats.namespaceSelector`},
		{name: "a name outside the cluster", give: []string{"--set", "nats.url=tls://connect.ngs.global:4222"}, wantErr: "networkPolicy.nats.cidrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := render(t, append(slices.Clone(on), tt.give...)...)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.ElementsMatch(t, tt.want, natsNamespaces(m.networkPolicy(t)))
		})
	}

	apiPorts := func(m manifests) []int {
		var out []int
		for _, e := range m.networkPolicy(t).Spec.Egress {
			if len(e.To) > 0 && e.To[0].IPBlock != nil && e.To[0].IPBlock.CIDR == "0.0.0.0/0" {
				for _, p := range e.Ports {
					out = append(out, p.Port.IntValue())
				}
			}
		}
		return out
	}
	require.Equal(t, []int{443}, apiPorts(mustRender(t, on...)))
	require.Equal(t, []int{443, 8443}, apiPorts(mustRender(t, append(slices.Clone(on), "--set", "config.endpoint=https://cbs.vpcep.example:8443")...)),
		"a VPC endpoint on its own port stays reachable")
	require.Equal(t, []int{443}, apiPorts(mustRender(t, append(slices.Clone(on), "--set", "config.endpoint=https://cbs.example.com/")...)))
}

// metricNames finds the worker's metric names in a query.
var metricNames = regexp.MustCompile(`\bcodearts_recover_[a-z0-9_]+`)

// documentedMetrics reads the metric table of docs/metrics.md, which the
// worker's own tests keep equal to what its /metrics serves.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("../../../docs/metrics.md")
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	row := regexp.MustCompile("^\\| `(codearts_recover_[a-z0-9_]+)`")
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = true
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

// promtoolBin finds the pinned promtool: $PROMTOOL, else ./bin/promtool of
// the repository (`make chart-test` installs it).
func promtoolBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../../bin/promtool")
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no promtool: run `make chart-test` (it installs the pinned promtool into ./bin) or set PROMTOOL")
	}
	return p
}
