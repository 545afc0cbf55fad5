package test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The Helm test hook runs `worker doctor` with the workers' own pod spec:
// same image, environment, secrets and volumes, so it checks what they use;
// it is not selected by the workers' Service, PDB or Deployment.
func TestDoctorTestHook(t *testing.T) {
	for _, tt := range []struct {
		name string
		give []string
	}{
		{name: "defaults"},
		{name: "full values", give: []string{"-f", fullValues, "--set", "doctorTest.args={--nats-monitor-url,http://nats:8222}"}},
		{name: "dev secret", give: []string{"--set", "credentials.mode=devSecret", "--set", "credentials.devSecret.ak=AK", "--set", "credentials.devSecret.sk=SK"}},
		{name: "production example", give: []string{"-f", "../codearts-recover-worker/examples/production-values.yaml"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.give...)
			o := m.named("Pod", fullname+"-doctor")
			require.NotNil(t, o, "kinds: %v", m.kinds())
			var pod corev1.Pod
			require.NoError(t, yaml.UnmarshalStrict(o.YAML, &pod))
			require.Equal(t, "test", pod.Annotations["helm.sh/hook"])
			require.Equal(t, corev1.RestartPolicyNever, pod.Spec.RestartPolicy)

			d := m.deployment(t)
			w := worker(t, d)
			require.Len(t, pod.Spec.Containers, 1)
			c := pod.Spec.Containers[0]
			require.Equal(t, "doctor", c.Args[0])
			if tt.name == "production example" {
				require.Empty(t, restricted(t, m), "the example passes the restricted Pod Security Standard")
				require.Equal(t, []string{"doctor", "--nats-monitor-url", "http://nats:8222"}, c.Args)
			}
			if tt.name == "full values" {
				require.Equal(t, []string{"doctor", "--nats-monitor-url", "http://nats:8222"}, c.Args)
			}
			require.Equal(t, w.Image, c.Image)
			require.Equal(t, w.Env, c.Env)
			require.Equal(t, w.EnvFrom, c.EnvFrom)
			require.Equal(t, w.VolumeMounts, c.VolumeMounts)
			require.Equal(t, w.SecurityContext, c.SecurityContext)
			require.Equal(t, d.Spec.Template.Spec.Volumes, pod.Spec.Volumes)
			require.Equal(t, d.Spec.Template.Spec.ServiceAccountName, pod.Spec.ServiceAccountName)
			require.Nil(t, c.ReadinessProbe)
			require.Empty(t, c.Ports)

			sel, err := labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
			require.NoError(t, err)
			require.False(t, sel.Matches(labels.Set(pod.Labels)), "the workers' selector does not pick the doctor pod")
			if m.has("NetworkPolicy") {
				// The doctor reaches NATS and the API as the workers do.
				np := m.networkPolicy(t)
				npSel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
				require.NoError(t, err)
				require.True(t, npSel.Matches(labels.Set(pod.Labels)), "the NetworkPolicy covers the doctor pod")
				require.True(t, npSel.Matches(labels.Set(d.Spec.Template.Labels)), "and the workers")
			}
		})
	}
	m := mustRender(t, "--set", "doctorTest.enabled=false")
	require.Nil(t, m.named("Pod", fullname+"-doctor"))
}
