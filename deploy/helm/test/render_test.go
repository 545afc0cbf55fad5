package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../codearts-recover-worker"
	release   = "rel"
	namespace = "recover"
	fullname  = "rel-codearts-recover-worker"
)

// helmBin finds the pinned helm: $HELM, else ./bin/helm of the repository.
func helmBin(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h, err := filepath.Abs("../../../bin/helm")
	require.NoError(t, err)
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("no helm: run `make chart-test` (it installs the pinned helm into ./bin) or set HELM")
	}
	return h
}

// object is one rendered manifest: its kind and name, and its YAML.
type object struct {
	Kind string
	Name string
	YAML []byte
}

// manifests is a render's output.
type manifests []object

// render runs helm template with args (e.g. --set k=v) and decodes the
// documents; the error carries helm's message when the render fails.
func render(t *testing.T, args ...string) (manifests, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New(strings.TrimSpace(stderr.String()))
	}
	var out manifests
	for _, doc := range strings.Split(stdout.String(), "\n---") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), doc)
		if meta.Kind == "" {
			continue // comments only
		}
		out = append(out, object{Kind: meta.Kind, Name: meta.Metadata.Name, YAML: []byte(doc)})
	}
	return out, nil
}

// mustRender renders and fails the test on a render error.
func mustRender(t *testing.T, args ...string) manifests {
	t.Helper()
	m, err := render(t, args...)
	require.NoError(t, err)
	return m
}

// kinds lists the kinds rendered.
func (m manifests) kinds() []string {
	var out []string
	for _, o := range m {
		out = append(out, o.Kind)
	}
	return out
}

// has reports whether an object of kind was rendered.
func (m manifests) has(kind string) bool {
	for _, o := range m {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

// decode unmarshals the only object of kind into v.
func (m manifests) decode(t *testing.T, kind string, v any) {
	t.Helper()
	var found []object
	for _, o := range m {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "objects of kind %s in %v", kind, m.kinds())
	require.NoError(t, yaml.UnmarshalStrict(found[0].YAML, v), "strict decode of %s", kind)
}

func (m manifests) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	m.decode(t, "Deployment", &d)
	return &d
}

// named returns the only object of kind named name, or nil.
func (m manifests) named(kind, name string) *object {
	for i := range m {
		if m[i].Kind == kind && m[i].Name == name {
			return &m[i]
		}
	}
	return nil
}

// configMap is the worker's ConfigMap (the dashboard has its own).
func (m manifests) configMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	o := m.named("ConfigMap", fullname)
	require.NotNil(t, o, "no ConfigMap %s in %v", fullname, m.kinds())
	var c corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict(o.YAML, &c), "strict decode of the ConfigMap")
	return &c
}

func (m manifests) pdb(t *testing.T) *policyv1.PodDisruptionBudget {
	t.Helper()
	var p policyv1.PodDisruptionBudget
	m.decode(t, "PodDisruptionBudget", &p)
	return &p
}

func (m manifests) hpa(t *testing.T) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	var h autoscalingv2.HorizontalPodAutoscaler
	m.decode(t, "HorizontalPodAutoscaler", &h)
	return &h
}

func (m manifests) networkPolicy(t *testing.T) *networkingv1.NetworkPolicy {
	t.Helper()
	var n networkingv1.NetworkPolicy
	m.decode(t, "NetworkPolicy", &n)
	return &n
}

// worker is the worker container of d.
func worker(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "worker" {
			return c
		}
	}
	t.Fatal("no worker container")
	return nil
}

// envVar returns the container's variable name (nil when absent).
func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// files lists every file the pod's volumes put into the worker container,
// by absolute path, with the volume that provides it.
func files(t *testing.T, d *appsv1.Deployment) map[string]corev1.Volume {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	out := map[string]corev1.Volume{}
	for _, m := range worker(t, d).VolumeMounts {
		v, ok := vols[m.Name]
		require.True(t, ok, "mount %s has no volume", m.Name)
		var paths []string
		switch {
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				paths = append(paths, it.Path)
			}
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					paths = append(paths, s.ServiceAccountToken.Path)
				}
			}
		}
		for _, p := range paths {
			out[filepath.Join(m.MountPath, p)] = v
		}
	}
	return out
}
