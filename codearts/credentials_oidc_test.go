package codearts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/provider"
	"github.com/stretchr/testify/require"
)

// OIDC federation (the chart's credentials.mode=oidc): no static keys, an
// IdP id and a projected token file. LoadCredentials must keep them as
// refreshing credentials for the SDK to exchange, not reject them.
func TestLoadCredentialsOIDC(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tok, []byte("eyJhbGciOi.test.token"), 0o600))
	t.Setenv("HUAWEICLOUD_SDK_AK", "")
	t.Setenv("HUAWEICLOUD_SDK_SK", "")
	t.Setenv("HUAWEICLOUD_SDK_IDP_ID", "my-oidc-idp")
	t.Setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", tok)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", "proj")
	orig := credentialProviders
	t.Cleanup(func() { credentialProviders = orig })
	credentialProviders = func() []provider.ICredentialProvider {
		return []provider.ICredentialProvider{provider.BasicCredentialEnvProvider()}
	}
	c, err := LoadCredentials()
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.False(t, c.IsZero())
	require.NotNil(t, c.sts)
	require.Equal(t, "my-oidc-idp", c.sts.IdpId)
}
