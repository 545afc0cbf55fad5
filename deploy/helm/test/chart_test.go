package test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// fullValues is the values file that turns on everything optional.
const fullValues = "../codearts-recover-worker/ci/full-values.yaml"

// restricted evaluates the pod template against the restricted Pod Security
// Standard, latest version, as the admission controller would.
func restricted(t *testing.T, m manifests) []string {
	t.Helper()
	d := m.deployment(t)
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	var violations []string
	for _, r := range ev.EvaluatePod(lv, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		if !r.Allowed {
			violations = append(violations, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return violations
}

func TestPodSecurity(t *testing.T) {
	tests := []struct {
		name string
		give []string
	}{
		{name: "defaults"},
		{name: "full values", give: []string{"-f", fullValues}},
		{name: "oidc", give: []string{"--set", "credentials.mode=oidc", "--set", "credentials.oidc.idpId=cce-idp", "--set", "credentials.oidc.audience=sts", "--set", "config.projectId=p1"}},
		{name: "pod identity", give: []string{"--set", "credentials.mode=podIdentity", "--set", "credentials.podIdentity.credentialsUri=http://169.254.170.2/v1/credentials", "--set", "credentials.podIdentity.tokenAudience=pod-identity"}},
		{name: "dev secret", give: []string{"--set", "credentials.mode=devSecret", "--set", "credentials.devSecret.ak=AK", "--set", "credentials.devSecret.sk=SK"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.give...)
			require.Empty(t, restricted(t, m))

			d := m.deployment(t)
			pod := d.Spec.Template.Spec
			c := worker(t, d)
			require.NotNil(t, pod.AutomountServiceAccountToken)
			require.False(t, *pod.AutomountServiceAccountToken, "no Kubernetes API token in the pod")
			require.Equal(t, int64(65532), *pod.SecurityContext.RunAsUser)
			sc := c.SecurityContext
			require.True(t, *sc.ReadOnlyRootFilesystem)
			require.True(t, *sc.RunAsNonRoot)
			require.Equal(t, int64(65532), *sc.RunAsUser)
			require.False(t, *sc.AllowPrivilegeEscalation)
			require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
			require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
		})
	}
}

// TestPodSecurityCatchesViolations shows the check above can fail.
func TestPodSecurityCatchesViolations(t *testing.T) {
	m := mustRender(t, "--set", "securityContext.allowPrivilegeEscalation=true", "--set", "securityContext.capabilities.drop=null")
	require.Len(t, restricted(t, m), 2)
}

func TestProbesAndShutdown(t *testing.T) {
	d := mustRender(t).deployment(t)
	c := worker(t, d)
	require.Equal(t, []string{"run"}, c.Args)
	require.Len(t, c.Ports, 1)
	require.Equal(t, "http", c.Ports[0].Name)
	require.Equal(t, int32(8080), c.Ports[0].ContainerPort)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, intstr.FromString("http"), c.LivenessProbe.HTTPGet.Port)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, intstr.FromString("http"), c.ReadinessProbe.HTTPGet.Port)
	require.Nil(t, c.Lifecycle, "SIGTERM starts the drain; no preStop hook")

	// 20s drain + 10s API timeout + 15s to flush and close.
	require.Equal(t, int64(45), *d.Spec.Template.Spec.TerminationGracePeriodSeconds)
	require.Equal(t, "8080", strings.TrimPrefix(mustRender(t).configMap(t).Data["RECOVER_HTTP_ADDR"], ":"))

	require.Equal(t, "metadata.name", envVar(c, "POD_NAME").ValueFrom.FieldRef.FieldPath, "dead letters name the pod")
	require.Equal(t, "limits.memory", envVar(c, "GOMEMLIMIT").ValueFrom.ResourceFieldRef.Resource)
	require.NotEmpty(t, d.Spec.Template.Annotations["checksum/config"])
}

func TestGracePeriod(t *testing.T) {
	tests := []struct {
		name      string
		give      []string
		wantGrace int64
		wantErr   string
	}{
		{name: "longer drain", give: []string{"--set", "config.drainTimeout=1m30s", "--set", "config.apiTimeout=2500ms"}, wantGrace: 90 + 3 + 15},
		{name: "explicit", give: []string{"--set", "terminationGracePeriodSeconds=120"}, wantGrace: 120},
		{name: "too short", give: []string{"--set", "terminationGracePeriodSeconds=30"}, wantErr: "must exceed config.drainTimeout + config.apiTimeout (30s)"},
		{name: "not a duration", give: []string{"--set", "config.drainTimeout=20 seconds"}, wantErr: "drainTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := render(t, tt.give...)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantGrace, *m.deployment(t).Spec.Template.Spec.TerminationGracePeriodSeconds)
		})
	}
}

func TestConfigEnv(t *testing.T) {
	m := mustRender(t,
		"--set", "config.concurrency=64",
		"--set", "config.maxAckPending=1000000",
		"--set", "config.rateLimit=12.5",
		"--set", "config.regions={cn-north-4,cn-south-1}",
		"--set", "config.classify={500:CB.00060299=transient}",
		"--set", "config.noCreate=true",
		"--set", "config.replicas=3",
		"--set", "nats.url=nats://nats-a:4222\\,nats://nats-b:4222",
		"--set", "nats.user=recover",
	)
	cm := m.configMap(t)
	for k, want := range map[string]string{
		"RECOVER_CONCURRENCY":        "64",
		"RECOVER_MAX_ACK_PENDING":    "1000000", // not 1e+06
		"RECOVER_RATE_LIMIT":         "12.5",
		"RECOVER_REGIONS":            "cn-north-4,cn-south-1",
		"RECOVER_CLASSIFY":           "500:CB.00060299=transient",
		"RECOVER_NO_CREATE":          "true",
		"RECOVER_REPLICAS":           "3",
		"RECOVER_DRAIN_TIMEOUT":      "20s",
		"RECOVER_DLQ_MAX_AGE":        "336h",
		"RECOVER_TRIES_PER_DELIVERY": "3",
		"RECOVER_NATS_URL":           "nats://nats-a:4222,nats://nats-b:4222",
		"RECOVER_NATS_USER":          "recover",
		"RECOVER_HTTP_ADDR":          ":8080",
	} {
		require.Equal(t, want, cm.Data[k], k)
	}
	require.NotContains(t, cm.Data, "RECOVER_ENDPOINT", `"" leaves the worker's default`)
	for k := range cm.Data {
		require.True(t, strings.HasPrefix(k, "RECOVER_"), k)
	}

	c := worker(t, m.deployment(t))
	require.Len(t, c.EnvFrom, 1)
	require.Equal(t, fullname, c.EnvFrom[0].ConfigMapRef.Name)
	require.Equal(t, cm.Name, fullname)

	// A config change rolls the pods.
	before := mustRender(t).deployment(t).Spec.Template.Annotations["checksum/config"]
	after := mustRender(t, "--set", "config.concurrency=16").deployment(t).Spec.Template.Annotations["checksum/config"]
	require.NotEqual(t, before, after)
}

// secretRef is where an environment variable's value comes from.
type secretRef struct{ secret, key string }

func ref(t *testing.T, c *corev1.Container, name string) secretRef {
	t.Helper()
	e := envVar(c, name)
	require.NotNil(t, e, "env %s", name)
	require.NotNil(t, e.ValueFrom, "env %s must come from a Secret", name)
	require.NotNil(t, e.ValueFrom.SecretKeyRef, "env %s must come from a Secret", name)
	return secretRef{e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key}
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name      string
		give      []string
		wantEnv   map[string]secretRef // from a Secret
		wantValue map[string]string    // plain values
		wantFiles map[string]string    // path -> secret name ("" = projected token)
		wantKinds []string
		wantNone  []string // env vars that must be absent
	}{
		{
			name:      "existing secret as SDK profile file",
			give:      []string{"--set", "credentials.existingSecret.name=codearts"},
			wantValue: map[string]string{"HUAWEICLOUD_SDK_CREDENTIALS_FILE": "/etc/huaweicloud/credentials"},
			wantFiles: map[string]string{"/etc/huaweicloud/credentials": "codearts"},
			wantNone:  []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"},
		},
		{
			name:      "default secret name",
			wantFiles: map[string]string{"/etc/huaweicloud/credentials": fullname + "-credentials"},
		},
		{
			name: "existing secret as env",
			give: []string{"--set", "credentials.existingSecret.name=codearts", "--set", "credentials.existingSecret.format=env"},
			wantEnv: map[string]secretRef{
				"HUAWEICLOUD_SDK_AK": {"codearts", "ak"}, "HUAWEICLOUD_SDK_SK": {"codearts", "sk"},
				"HUAWEICLOUD_SDK_PROJECT_ID": {"codearts", "project_id"},
			},
			wantNone: []string{"HUAWEICLOUD_SDK_CREDENTIALS_FILE"},
		},
		{
			name:      "dev secret",
			give:      []string{"--set", "credentials.mode=devSecret", "--set", "credentials.devSecret.ak=AK", "--set", "credentials.devSecret.sk=SK"},
			wantEnv:   map[string]secretRef{"HUAWEICLOUD_SDK_AK": {fullname + "-dev-credentials", "ak"}, "HUAWEICLOUD_SDK_SK": {fullname + "-dev-credentials", "sk"}},
			wantKinds: []string{"Secret"},
		},
		{
			name: "oidc",
			give: []string{"--set", "credentials.mode=oidc", "--set", "credentials.oidc.idpId=cce-idp", "--set", "credentials.oidc.audience=sts.example", "--set", "config.projectId=p1"},
			wantValue: map[string]string{
				"HUAWEICLOUD_SDK_IDP_ID": "cce-idp", "HUAWEICLOUD_SDK_ID_TOKEN_FILE": "/var/run/secrets/huaweicloud/oidc/token",
				"HUAWEICLOUD_SDK_PROJECT_ID": "p1",
			},
			wantFiles: map[string]string{"/var/run/secrets/huaweicloud/oidc/token": ""},
			wantNone:  []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_CREDENTIALS_FILE"},
		},
		{
			name: "pod identity wired by hand",
			give: []string{"--set", "credentials.mode=podIdentity", "--set", "credentials.podIdentity.credentialsUri=http://169.254.170.2/v1/credentials", "--set", "credentials.podIdentity.tokenAudience=pod-identity"},
			wantValue: map[string]string{
				"HC_CONTAINER_CREDENTIALS_FULL_URI":     "http://169.254.170.2/v1/credentials",
				"HC_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/huaweicloud/pod-identity/token",
			},
			wantFiles: map[string]string{"/var/run/secrets/huaweicloud/pod-identity/token": ""},
			wantNone:  []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_CREDENTIALS_FILE"},
		},
		{
			name:     "pod identity injected by the CCE add-on",
			give:     []string{"--set", "credentials.mode=podIdentity"},
			wantNone: []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_CREDENTIALS_FILE", "HC_CONTAINER_CREDENTIALS_FULL_URI"},
		},
		{
			name: "nats password, creds, nkey and mutual TLS",
			give: []string{
				"--set", "nats.user=recover", "--set", "nats.existingSecret=nats-auth", "--set", "nats.passwordKey=password",
				"--set", "nats.tokenKey=token", "--set", "nats.credsKey=recover.creds", "--set", "nats.nkeyKey=seed",
				"--set", "nats.tls.existingSecret=nats-client-tls", "--set", "nats.tls.certKey=tls.crt", "--set", "nats.tls.keyKey=tls.key",
			},
			// Secrets as read-only files, never in the environment.
			wantNone: []string{"RECOVER_NATS_PASSWORD", "RECOVER_NATS_TOKEN"},
			wantFiles: map[string]string{
				"/etc/nats/auth/password": "nats-auth", "/etc/nats/auth/token": "nats-auth",
				"/etc/nats/auth/user.creds": "nats-auth", "/etc/nats/auth/user.nk": "nats-auth",
				"/etc/nats/tls/ca.crt": "nats-client-tls", "/etc/nats/tls/tls.crt": "nats-client-tls", "/etc/nats/tls/tls.key": "nats-client-tls",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.give...)
			d := m.deployment(t)
			c := worker(t, d)
			for name, want := range tt.wantEnv {
				require.Equal(t, want, ref(t, c, name), name)
			}
			for name, want := range tt.wantValue {
				e := envVar(c, name)
				require.NotNil(t, e, name)
				require.Equal(t, want, e.Value, name)
			}
			for _, name := range tt.wantNone {
				require.Nil(t, envVar(c, name), name)
			}
			got := files(t, d)
			for path, secret := range tt.wantFiles {
				v, ok := got[path]
				require.True(t, ok, "%s is not mounted; mounted: %v", path, got)
				if secret == "" {
					require.NotNil(t, v.Projected, path)
				} else {
					require.Equal(t, secret, v.Secret.SecretName, path)
				}
			}
			// Every file path the worker is told about exists in the pod.
			cm := m.configMap(t)
			var paths []string
			for k, v := range cm.Data {
				if strings.HasPrefix(v, "/") && k != "RECOVER_HTTP_ADDR" {
					paths = append(paths, v)
				}
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Value, "/") {
					paths = append(paths, e.Value)
				}
			}
			for _, p := range paths {
				require.Contains(t, got, p, "the worker is pointed at %s, which nothing mounts", p)
			}
			for _, k := range tt.wantKinds {
				require.True(t, m.has(k), k)
			}
			require.False(t, *d.Spec.Template.Spec.AutomountServiceAccountToken)
		})
	}
}

func TestNoSecretOutsideSecrets(t *testing.T) {
	const ak, sk, project = "AKDEVONLY7777", "SKDEVONLY-do-not-leak-4242", "proj-dev-5151"
	m := mustRender(t, "-f", fullValues,
		"--set", "credentials.mode=devSecret",
		"--set", "credentials.devSecret.ak="+ak, "--set", "credentials.devSecret.sk="+sk,
		"--set", "credentials.devSecret.projectId="+project)
	var secret corev1.Secret
	m.decode(t, "Secret", &secret)
	require.Equal(t, "true", secret.Annotations["codearts-recover-worker/development-only"])
	require.Equal(t, sk, secret.StringData["sk"])
	for _, o := range m {
		if o.Kind == "Secret" {
			continue
		}
		for _, s := range []string{ak, sk} {
			require.NotContains(t, string(o.YAML), s, "%s %s holds a secret value", o.Kind, o.Name)
		}
	}
	require.NotEmpty(t, m.deployment(t).Spec.Template.Annotations["checksum/dev-credentials"], "rotating the dev keys rolls the pods")

	_, err := render(t, "--set", "nats.url=nats://recover:hunter2@nats:4222")
	require.ErrorContains(t, err, "nats.url must not hold credentials")
}

func TestAutoscaling(t *testing.T) {
	keda := []string{"--set", "keda.enabled=true", "--set", "keda.natsMonitoringEndpoint=nats-headless.nats.svc:8222"}
	tests := []struct {
		name        string
		give        []string
		wantHPA     bool
		wantKEDA    bool
		wantErr     string
		wantReplica bool // the Deployment sets replicas
	}{
		{name: "neither", wantReplica: true},
		{name: "hpa", give: []string{"--set", "autoscaling.enabled=true"}, wantHPA: true},
		{name: "keda", give: keda, wantKEDA: true},
		{name: "both", give: append([]string{"--set", "autoscaling.enabled=true"}, keda...), wantErr: "exclusive"},
		{name: "keda without endpoint", give: []string{"--set", "keda.enabled=true"}, wantErr: "keda.natsMonitoringEndpoint is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := render(t, tt.give...)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantHPA, m.has("HorizontalPodAutoscaler"))
			require.Equal(t, tt.wantKEDA, m.has("ScaledObject"))
			require.Equal(t, tt.wantReplica, m.deployment(t).Spec.Replicas != nil, "an autoscaler owns the replica count")
			if tt.wantHPA {
				h := m.hpa(t)
				require.Equal(t, fullname, h.Spec.ScaleTargetRef.Name)
				require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
			}
		})
	}
}

// scaledObject is the part of a KEDA ScaledObject the chart sets.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		PollingInterval int `json:"pollingInterval"`
		CooldownPeriod  int `json:"cooldownPeriod"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

func TestKEDATriggerOnThisConsumer(t *testing.T) {
	m := mustRender(t, "--set", "keda.enabled=true", "--set", "keda.natsMonitoringEndpoint=nats-headless.nats.svc:8222",
		"--set", "config.stream=RECOVER_EU", "--set", "config.consumer=eu-worker", "--set", "keda.lagThreshold=250",
		"--set", "keda.minReplicaCount=0", "--set", "keda.authenticationRef=nats-monitor")
	var so scaledObject
	m.decode(t, "ScaledObject", &so)
	require.Equal(t, "keda.sh/v1alpha1", so.APIVersion)
	require.Equal(t, fullname, so.Spec.ScaleTargetRef.Name)
	require.Equal(t, 0, so.Spec.MinReplicaCount)
	require.Len(t, so.Spec.Triggers, 1)
	tr := so.Spec.Triggers[0]
	require.Equal(t, "nats-jetstream", tr.Type)
	require.Equal(t, map[string]string{
		"natsServerMonitoringEndpoint": "nats-headless.nats.svc:8222", "account": "$G",
		"stream": "RECOVER_EU", "consumer": "eu-worker",
		"lagThreshold": "250", "activationLagThreshold": "0", "useHttps": "false",
	}, tr.Metadata)
	require.Equal(t, "nats-monitor", tr.AuthenticationRef.Name)
	require.False(t, m.has("PodDisruptionBudget"), "minReplicaCount 0: no PDB")
}

func TestPodDisruptionBudget(t *testing.T) {
	keda := []string{"--set", "keda.enabled=true", "--set", "keda.natsMonitoringEndpoint=n:8222"}
	tests := []struct {
		name    string
		give    []string
		wantPDB bool
	}{
		{name: "default two replicas", wantPDB: true},
		{name: "one replica", give: []string{"--set", "replicaCount=1"}},
		{name: "disabled", give: []string{"--set", "podDisruptionBudget.enabled=false"}},
		{name: "hpa min 1", give: []string{"--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=1"}},
		{name: "hpa min 3", give: []string{"--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=3"}, wantPDB: true},
		{name: "keda min 1", give: keda},
		{name: "keda min 2", give: append([]string{"--set", "keda.minReplicaCount=2"}, keda...), wantPDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustRender(t, tt.give...)
			require.Equal(t, tt.wantPDB, m.has("PodDisruptionBudget"))
			if !tt.wantPDB {
				return
			}
			p := m.pdb(t)
			require.Equal(t, intstr.FromInt32(1), *p.Spec.MaxUnavailable)
			require.Nil(t, p.Spec.MinAvailable)
			require.Equal(t, policyv1.AlwaysAllow, *p.Spec.UnhealthyPodEvictionPolicy, "not-ready workers never block a drain")
			require.Equal(t, m.deployment(t).Spec.Selector.MatchLabels, p.Spec.Selector.MatchLabels)
		})
	}
	// The chart supports Kubernetes 1.25; unhealthyPodEvictionPolicy is beta
	// from 1.27 and is left out before.
	old := mustRender(t, "--kube-version", "1.25.0").pdb(t)
	require.Nil(t, old.Spec.UnhealthyPodEvictionPolicy, "Kubernetes 1.25 has no unhealthyPodEvictionPolicy")
	require.Nil(t, mustRender(t, "--kube-version", "1.26.3").pdb(t).Spec.UnhealthyPodEvictionPolicy)
	require.NotNil(t, mustRender(t, "--kube-version", "1.27.0").pdb(t).Spec.UnhealthyPodEvictionPolicy)
}

func TestServiceMonitorNeedsCapability(t *testing.T) {
	on := []string{"--set", "metrics.serviceMonitor.enabled=true"}
	m := mustRender(t, on...)
	require.False(t, m.has("ServiceMonitor"), "no Prometheus Operator: no ServiceMonitor")
	require.True(t, m.has("Service"), "the metrics Service is there regardless")

	m = mustRender(t, append(on, "--api-versions", "monitoring.coreos.com/v1")...)
	require.True(t, m.has("ServiceMonitor"))
	var sm struct {
		Spec struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	for _, o := range m {
		if o.Kind == "ServiceMonitor" {
			require.NoError(t, yaml.Unmarshal(o.YAML, &sm))
		}
	}
	var svc corev1.Service
	m.decode(t, "Service", &svc)
	for k, v := range sm.Spec.Selector.MatchLabels {
		require.Equal(t, v, svc.Labels[k], "the ServiceMonitor selects the metrics Service by %s", k)
	}
	require.Equal(t, "http", sm.Spec.Endpoints[0].Port)
	require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
	require.Equal(t, "http", svc.Spec.Ports[0].Name)

	// Capability present but not asked for: nothing.
	require.False(t, mustRender(t, "--api-versions", "monitoring.coreos.com/v1").has("ServiceMonitor"))
}

func TestMisspeltKeyFails(t *testing.T) {
	for _, give := range []string{
		"replicaCont=3",
		"config.concurency=64",
		"credentials.existingSecret.nmae=codearts",
		"nats.tls.enabled=true",
		"keda.lagTreshold=10",
	} {
		t.Run(give, func(t *testing.T) {
			_, err := render(t, "--set", give)
			require.ErrorContains(t, err, "additional properties")
		})
	}
	_, err := render(t, "--set", "credentials.mode=vault")
	require.ErrorContains(t, err, "credentials/mode")
}

func TestNetworkPolicy(t *testing.T) {
	require.False(t, mustRender(t).has("NetworkPolicy"))
	np := mustRender(t, "--set", "networkPolicy.enabled=true").networkPolicy(t)
	var ports []string
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			ports = append(ports, string(*p.Protocol)+"/"+p.Port.String())
		}
	}
	require.ElementsMatch(t, []string{"UDP/53", "TCP/53", "TCP/4222", "TCP/443"}, ports)
	// With the defaults, the policy admits the NATS the default URL names:
	// nats://nats:4222, a Service in the release's own namespace.
	var natsTo []string
	for _, e := range np.Spec.Egress {
		if len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 4222 {
			for _, peer := range e.To {
				natsTo = append(natsTo, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
			}
		}
	}
	require.Equal(t, []string{namespace}, natsTo, "egress to NATS in the release's namespace")
	other := mustRender(t, "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.nats.namespaceSelector.matchLabels.team=msg").networkPolicy(t)
	var kept bool
	for _, e := range other.Spec.Egress {
		for _, peer := range e.To {
			if peer.NamespaceSelector != nil && peer.NamespaceSelector.MatchLabels["team"] == "msg" {
				kept = true
			}
		}
	}
	require.True(t, kept, "an explicit selector is kept")
	require.Len(t, np.Spec.Ingress, 1)
	require.Equal(t, "http", np.Spec.Ingress[0].Ports[0].Port.String(), "only the metrics port is reachable")
}
