package test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// The status page: on loopback by default (kubectl port-forward only, no
// container port, nothing in the NetworkPolicy), read-only without a token.
func TestStatusPageDefaults(t *testing.T) {
	m := mustRender(t, "--set", "networkPolicy.enabled=true")
	cm := m.configMap(t)
	require.Equal(t, "127.0.0.1:8081", cm.Data["RECOVER_UI_ADDR"])
	require.Equal(t, "false", cm.Data["RECOVER_UI_ACTIONS"])
	require.NotContains(t, cm.Data, "RECOVER_UI_TOKEN_FILE")
	require.NotContains(t, cm.Data, "RECOVER_ALLOWED_HOSTS", "[] leaves the worker's default")
	c := worker(t, m.deployment(t))
	require.Len(t, c.Ports, 1, "only the metrics port")
	require.Equal(t, "http", c.Ports[0].Name)
	np := m.networkPolicy(t)
	require.Len(t, np.Spec.Ingress, 1, "only the metrics port is reachable")
}

// With actions: the token comes from a Secret as a read-only file, the page
// listens on the pod network and only uiFrom may reach it.
func TestStatusPageActions(t *testing.T) {
	m := mustRender(t,
		"--set", "config.uiActions=true", "--set", "config.uiAddr=:8081",
		"--set", "config.allowedHosts={recover.ops.svc,*.example.com}",
		"--set", "ui.tokenSecret=recover-ui", "--set", "ui.tokenKey=page-token",
		"--set", "networkPolicy.enabled=true",
		"--set", "networkPolicy.uiFrom[0].namespaceSelector.matchLabels.team=ops",
	)
	cm := m.configMap(t)
	require.Equal(t, "true", cm.Data["RECOVER_UI_ACTIONS"])
	require.Equal(t, ":8081", cm.Data["RECOVER_UI_ADDR"])
	require.Equal(t, "/etc/recover/ui/token", cm.Data["RECOVER_UI_TOKEN_FILE"])
	require.Equal(t, "recover.ops.svc,*.example.com", cm.Data["RECOVER_ALLOWED_HOSTS"])

	d := m.deployment(t)
	c := worker(t, d)
	var mount *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == "/etc/recover/ui" {
			mount = &c.VolumeMounts[i]
		}
	}
	require.NotNil(t, mount, "the token is mounted")
	require.True(t, mount.ReadOnly)
	var vol *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == mount.Name {
			vol = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	require.NotNil(t, vol)
	require.Equal(t, "recover-ui", vol.Secret.SecretName)
	require.Equal(t, []corev1.KeyToPath{{Key: "page-token", Path: "token"}}, vol.Secret.Items)
	for _, e := range c.Env {
		require.NotEqual(t, "RECOVER_UI_TOKEN", e.Name, "never in the environment")
	}

	var ports []string
	for _, p := range c.Ports {
		ports = append(ports, p.Name)
	}
	require.Equal(t, []string{"http", "ui"}, ports)
	np := m.networkPolicy(t)
	require.Len(t, np.Spec.Ingress, 2)
	ui := np.Spec.Ingress[1]
	require.Equal(t, "ui", ui.Ports[0].Port.String())
	require.Len(t, ui.From, 1)
	require.Equal(t, "ops", ui.From[0].NamespaceSelector.MatchLabels["team"], "only the named peers reach the page")
}

// The chart refuses actions without a token, or without a NetworkPolicy
// naming who may reach the page.
func TestStatusPageActionsRefused(t *testing.T) {
	tests := []struct {
		name    string
		give    []string
		wantErr string
	}{
		{"no token", []string{"--set", "networkPolicy.enabled=true", "--set", "networkPolicy.uiFrom[0].podSelector.matchLabels.app=proxy"}, "config.uiActions needs ui.tokenSecret"},
		{"no NetworkPolicy", []string{"--set", "ui.tokenSecret=recover-ui"}, "config.uiActions needs a NetworkPolicy naming who may reach the status page"},
		{"a NetworkPolicy naming nobody", []string{"--set", "ui.tokenSecret=recover-ui", "--set", "networkPolicy.enabled=true"}, "networkPolicy.uiFrom"},
		{"a host with a port", []string{"--set", "ui.tokenSecret=recover-ui", "--set", "networkPolicy.enabled=true",
			"--set", "networkPolicy.uiFrom[0].podSelector.matchLabels.app=proxy", "--set", "config.allowedHosts={host:8080}"}, "allowedHosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, append([]string{"--set", "config.uiActions=true"}, tt.give...)...)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// NATS credentials over plaintext fail the render, as they would fail the
// worker's start; TLS or config.allowInsecure lets them through.
func TestNATSCredentialsNeedTLS(t *testing.T) {
	creds := []string{"--set", "nats.user=recover", "--set", "nats.existingSecret=nats-auth", "--set", "nats.passwordKey=password"}
	_, err := render(t, creds...)
	require.ErrorContains(t, err, "nats credentials over a plaintext nats.url")
	mustRender(t, append(creds, "--set", "nats.url=tls://nats:4222")...)
	mustRender(t, append(creds, "--set", "nats.tls.existingSecret=nats-tls")...)
	cm := mustRender(t, append(creds, "--set", "config.allowInsecure=true")...).configMap(t)
	require.Equal(t, "true", cm.Data["RECOVER_ALLOW_INSECURE"])
}
