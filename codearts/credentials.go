package codearts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/provider"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/impl"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	"go.uber.org/zap/zapcore"
)

// Environment variables read by LoadCredentials besides the SDK's own
// HUAWEICLOUD_SDK_* names.
const (
	EnvCloudSDKAK = "CLOUD_SDK_AK"
	EnvCloudSDKSK = "CLOUD_SDK_SK"
)

const redacted = "[redacted]"

// Credentials are the keys requests are signed with (SDK-HMAC-SHA256).
//
// Credentials print redacted: String, GoString, MarshalJSON and
// MarshalLogObject show a prefix of AK and never SK or SecurityToken, so a
// Credentials value (or a Config holding one) can be logged or formatted
// safely.
type Credentials struct {
	// AK is the access key id.
	AK string
	// SK is the secret access key.
	SK string
	// ProjectID is sent as X-Project-Id; empty means Config.ProjectID or,
	// failing that, the SDK asks IAM per region (not with Config.Endpoint).
	ProjectID string
	// SecurityToken is set for temporary (STS) credentials.
	SecurityToken string

	// sts holds credentials from ECS metadata, CCE pod identity or an IdP
	// that the SDK refreshes before they expire; nil for static keys.
	sts *auth.BasicCredentials
}

// IsZero reports whether no credential is set.
func (c Credentials) IsZero() bool {
	return c.AK == "" && c.SK == "" && c.SecurityToken == "" && c.sts == nil
}

// Validate reports a missing half of an AK/SK pair.
func (c Credentials) Validate() error {
	if c.sts != nil {
		return nil
	}
	switch {
	case c.AK == "" && c.SK == "":
		return errors.New("AK and SK are required")
	case c.AK == "":
		return errors.New("AK is required when SK is set")
	case c.SK == "":
		return errors.New("SK is required when AK is set")
	}
	return nil
}

// String prints the credentials with AK shortened and the secrets hidden.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AK: %s, SK: %s, ProjectID: %s, SecurityToken: %s}",
		maskAK(c.AK), maskSecret(c.SK), c.ProjectID, maskSecret(c.SecurityToken))
}

// GoString is String, so %#v does not reveal the secrets either.
func (c Credentials) GoString() string { return "codearts." + c.String() }

// MarshalJSON writes the redacted form.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		AK            string `json:"ak,omitempty"`
		SK            string `json:"sk,omitempty"`
		ProjectID     string `json:"project_id,omitempty"`
		SecurityToken string `json:"security_token,omitempty"`
	}{maskAK(c.AK), maskSecret(c.SK), c.ProjectID, maskSecret(c.SecurityToken)})
}

// MarshalLogObject writes the redacted form for zap.Object.
func (c Credentials) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("ak", maskAK(c.AK))
	enc.AddString("sk", maskSecret(c.SK))
	if c.ProjectID != "" {
		enc.AddString("project_id", c.ProjectID)
	}
	if c.SecurityToken != "" {
		enc.AddString("security_token", redacted)
	}
	if c.sts != nil {
		enc.AddBool("refreshing", true)
	}
	return nil
}

func maskAK(ak string) string {
	if len(ak) < 12 {
		return maskSecret(ak)
	}
	return ak[:4] + "****"
}

func maskSecret(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// credentialProviders is the lookup order of LoadCredentials; tests replace
// it to stay away from the metadata service.
var credentialProviders = func() []provider.ICredentialProvider {
	return []provider.ICredentialProvider{
		provider.BasicCredentialEnvProvider(),
		cloudSDKEnvProvider{},
		provider.BasicCredentialProfileProvider(),
		provider.BasicCredentialPodIdentityProvider(),
		provider.BasicCredentialMetadataProvider(),
	}
}

// LoadCredentials reads credentials through the SDK's provider chain, in this
// order: HUAWEICLOUD_SDK_AK/SK (with HUAWEICLOUD_SDK_PROJECT_ID and
// HUAWEICLOUD_SDK_SECURITY_TOKEN), CLOUD_SDK_AK/SK, the profile file
// (~/.huaweicloud/credentials or HUAWEICLOUD_SDK_CREDENTIALS_FILE), CCE pod
// identity, and ECS metadata. Temporary credentials from the last three are
// refreshed by the SDK before they expire. Call it again (or
// Client.ReloadCredentials) to pick up rotated keys.
func LoadCredentials() (Credentials, error) {
	icred, err := provider.NewCredentialProviderChain(credentialProviders()).GetCredentials()
	if err != nil {
		return Credentials{}, fmt.Errorf("load credentials: %w", err)
	}
	bc, ok := icred.(*auth.BasicCredentials)
	if !ok {
		return Credentials{}, fmt.Errorf("load credentials: unexpected credential type %T", icred)
	}
	c := Credentials{AK: bc.AK, SK: bc.SK, ProjectID: bc.ProjectId, SecurityToken: bc.SecurityToken}
	// Temporary credentials the SDK refreshes itself: from metadata or pod
	// identity (StsAccessor), or federated through OIDC (IdpId and an ID
	// token file, HUAWEICLOUD_SDK_IDP_ID / HUAWEICLOUD_SDK_ID_TOKEN_FILE),
	// which the SDK exchanges for AK/SK/token on first use and on expiry.
	if bc.StsAccessor != nil || (bc.IdpId != "" && bc.IdTokenFile != "") {
		c.sts = bc
	}
	return c, nil
}

// cloudSDKEnvProvider reads CLOUD_SDK_AK and CLOUD_SDK_SK, the names used by
// several Huawei Cloud tools, with the SDK's project id and token variables.
type cloudSDKEnvProvider struct{}

func (cloudSDKEnvProvider) GetCredentials() (auth.ICredential, error) {
	ak, sk := os.Getenv(EnvCloudSDKAK), os.Getenv(EnvCloudSDKSK)
	if ak == "" || sk == "" {
		return nil, fmt.Errorf("%s and %s are not both set", EnvCloudSDKAK, EnvCloudSDKSK)
	}
	return auth.NewBasicCredentialsBuilder().WithAk(ak).WithSk(sk).
		WithProjectId(os.Getenv("HUAWEICLOUD_SDK_PROJECT_ID")).
		WithSecurityToken(os.Getenv("HUAWEICLOUD_SDK_SECURITY_TOKEN")).
		SafeBuild()
}

// sdkCredential returns an SDK credential for one region's client. Each
// region gets its own value because the SDK stores the resolved project id
// in it.
func (c Credentials) sdkCredential(projectID string) auth.ICredential {
	if c.sts != nil {
		cp := *c.sts
		if projectID != "" {
			cp.ProjectId = projectID
		}
		return &lockedCredential{inner: &cp}
	}
	return &auth.BasicCredentials{
		BaseCredentials: auth.BaseCredentials{AK: c.AK, SK: c.SK, SecurityToken: c.SecurityToken},
		ProjectId:       projectID,
	}
}

// lockedCredential serialises signing for refreshing credentials: the SDK
// rewrites AK, SK and token in place when it refreshes them, which would race
// with concurrent calls. Static keys are only read and need no lock.
type lockedCredential struct {
	mu    sync.Mutex
	inner *auth.BasicCredentials
}

func (l *lockedCredential) ProcessAuthParams(hc *impl.DefaultHttpClient, region string) (auth.ICredential, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.inner.ProcessAuthParams(hc, region); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *lockedCredential) ProcessAuthRequest(hc *impl.DefaultHttpClient, req *request.DefaultHttpRequest) (*request.DefaultHttpRequest, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner.ProcessAuthRequest(hc, req)
}
