package codearts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/provider"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

const testToken = "stsTOKENsecretVALUE0123456789"

func TestCredentialsNeverPrinted(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	creds := Credentials{AK: testAK, SK: testSK, ProjectID: "p1", SecurityToken: testToken}

	// A client whose every call fails authentication, logging everything it can.
	c, b := setup(t, func(cfg *Config) {
		cfg.Credentials = creds
		cfg.Logger = log
	}, codeartssim.WithCredentials(testAK, "the server's other secret"))
	_, recoverErr := c.Recover(context.Background(), jobA, "")
	require.Error(t, recoverErr)
	require.NoError(t, c.SetCredentials(creds))
	log.Info("everything", zap.Error(recoverErr), zap.Object("credentials", creds), zap.Any("config", b.cfg),
		zap.Stringer("stringer", creds), zap.Any("any", creds))

	var out bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		require.NoError(t, err)
		out.Write(buf.Bytes())
		buf.Free()
	}
	js, err := json.Marshal(b.cfg)
	require.NoError(t, err)
	out.Write(js)
	fmt.Fprintf(&out, "%v %+v %#v %s %v %+v %#v", creds, creds, creds, creds, b.cfg, b.cfg, b.cfg)
	out.WriteString(recoverErr.Error())

	text := out.String()
	require.Contains(t, text, "HPUA****")
	require.Contains(t, text, redacted)
	for _, secret := range []string{testSK, testToken, testAK} {
		require.NotContains(t, text, secret)
	}
	require.GreaterOrEqual(t, logs.Len(), 3)
}

func TestCredentialsString(t *testing.T) {
	tests := []struct {
		give Credentials
		want string
	}{
		{give: Credentials{AK: testAK, SK: testSK}, want: "Credentials{AK: HPUA****, SK: [redacted], ProjectID: , SecurityToken: }"},
		{give: Credentials{AK: "short", SK: "x", ProjectID: "p", SecurityToken: "t"}, want: "Credentials{AK: [redacted], SK: [redacted], ProjectID: p, SecurityToken: [redacted]}"},
		{give: Credentials{}, want: "Credentials{AK: , SK: , ProjectID: , SecurityToken: }"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.give.String())
			require.Equal(t, "codearts."+tt.want, fmt.Sprintf("%#v", tt.give))
		})
	}
}

// isolateEnv clears every credential source LoadCredentials reads, and keeps
// it away from the metadata service and pod identity endpoint.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PROJECT_ID",
		"HUAWEICLOUD_SDK_SECURITY_TOKEN", "HUAWEICLOUD_SDK_IDP_ID", "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
		EnvCloudSDKAK, EnvCloudSDKSK,
	} {
		t.Setenv(k, "")
	}
	t.Setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	orig := credentialProviders
	credentialProviders = func() []provider.ICredentialProvider { return orig()[:3] }
	t.Cleanup(func() { credentialProviders = orig })
}

func TestLoadCredentials(t *testing.T) {
	tests := []struct {
		name    string
		give    map[string]string
		want    Credentials
		wantErr bool
	}{
		{
			name: "SDK variables",
			give: map[string]string{
				"HUAWEICLOUD_SDK_AK": "ak1", "HUAWEICLOUD_SDK_SK": "sk1",
				"HUAWEICLOUD_SDK_PROJECT_ID": "p1", "HUAWEICLOUD_SDK_SECURITY_TOKEN": "tok1",
			},
			want: Credentials{AK: "ak1", SK: "sk1", ProjectID: "p1", SecurityToken: "tok1"},
		},
		{
			name: "CLOUD_SDK variables",
			give: map[string]string{EnvCloudSDKAK: "ak2", EnvCloudSDKSK: "sk2", "HUAWEICLOUD_SDK_PROJECT_ID": "p2"},
			want: Credentials{AK: "ak2", SK: "sk2", ProjectID: "p2"},
		},
		{
			name: "SDK variables first",
			give: map[string]string{"HUAWEICLOUD_SDK_AK": "ak1", "HUAWEICLOUD_SDK_SK": "sk1", EnvCloudSDKAK: "ak2", EnvCloudSDKSK: "sk2"},
			want: Credentials{AK: "ak1", SK: "sk1"},
		},
		{
			name:    "half a pair",
			give:    map[string]string{"HUAWEICLOUD_SDK_AK": "ak1", EnvCloudSDKSK: "sk2"},
			wantErr: true,
		},
		{name: "nothing", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tt.give {
				t.Setenv(k, v)
			}
			got, err := LoadCredentials()
			if tt.wantErr {
				require.Error(t, err)
				require.NotContains(t, err.Error(), "sk2")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestProfileFile(t *testing.T) {
	isolateEnv(t)
	path := filepath.Join(t.TempDir(), "credentials")
	writeFile(t, path, "[basic]\nak = akP\nsk = skP\nproject_id = pP\n")
	t.Setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", path)
	got, err := LoadCredentials()
	require.NoError(t, err)
	require.Equal(t, Credentials{AK: "akP", SK: "skP", ProjectID: "pP"}, got)
}

func TestReloadCredentials(t *testing.T) {
	isolateEnv(t)
	t.Setenv("HUAWEICLOUD_SDK_AK", testAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testSK)
	c, b := setup(t, func(cfg *Config) { cfg.Credentials = Credentials{} }) // loads from the environment
	_, err := c.Recover(context.Background(), jobA, "")
	require.NoError(t, err)

	// The keys are rotated: the server knows only the new pair.
	const newAK, newSK = "HPUAROTATEDKEY000002", "rotatedSecret0123456789"
	b.sim.SetCredentials(newAK, newSK)
	_, err = c.Recover(context.Background(), jobA, "")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 401, ae.StatusCode)

	t.Setenv("HUAWEICLOUD_SDK_AK", newAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", newSK)
	require.NoError(t, c.ReloadCredentials())
	_, err = c.Recover(context.Background(), jobA, "")
	require.NoError(t, err)
	require.Equal(t, 2, b.sim.Recovered(jobA))

	t.Setenv("HUAWEICLOUD_SDK_AK", "")
	require.Error(t, c.ReloadCredentials())
	_, err = c.Recover(context.Background(), jobA, "")
	require.NoError(t, err, "a failed reload keeps the credentials")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestNewClientWithoutCredentials(t *testing.T) {
	isolateEnv(t)
	_, err := NewClient(Config{Endpoint: "http://127.0.0.1:1"})
	require.ErrorContains(t, err, "load credentials")
}

func TestRefreshingCredentialsSignConcurrently(t *testing.T) {
	// Credentials from metadata or pod identity sign through lockedCredential,
	// one copy per region.
	sts := &auth.BasicCredentials{BaseCredentials: auth.BaseCredentials{AK: testAK, SK: testSK}}
	c, b := setup(t, func(cfg *Config) {
		cfg.Credentials = Credentials{AK: testAK, sts: sts}
		cfg.Regions = []string{"cn-east-3"}
	})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_, err := c.Recover(context.Background(), jobA, []string{"", "cn-east-3"}[i%2])
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, 16, b.sim.Recovered(jobA))

	sdk, err := c.sdkClient("cn-east-3")
	require.NoError(t, err)
	lc, ok := sdk.HcClient.GetCredential().(*lockedCredential)
	require.True(t, ok)
	require.NotSame(t, sts, lc.inner, "each region signs with its own copy")
	require.Equal(t, "0123456789abcdef0123456789abcdef", lc.inner.ProjectId)
	require.Empty(t, sts.ProjectId)
}
