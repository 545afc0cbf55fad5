package codeartssim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
	v3 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testAK    = "HPUATESTACCESSKEY0001"
	testSK    = "testSecretKey0123456789abcdefghijklmnopq"
	testToken = "MIIEXAMPLEiamTOKEN"
	jobA      = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
	jobB      = "0123456789abcdef0123456789ABCDEF"
)

// bundle is what setup returns besides the server.
type bundle struct {
	client *codearts.Client
}

// setup starts a simulator with opts on loopback and a codearts client
// signing with testAK/testSK against it.
func setup(t *testing.T, opts ...codeartssim.Option) (*codeartssim.Server, *bundle) {
	t.Helper()
	sim := codeartssim.New(append([]codeartssim.Option{codeartssim.WithCredentials(testAK, testSK)}, opts...)...)
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { require.NoError(t, sim.Close()) })

	client, err := codearts.NewClient(codearts.Config{
		Endpoint:    sim.URL(),
		ProjectID:   "0123456789abcdef0123456789abcdef",
		Timeout:     5 * time.Second,
		Credentials: codearts.Credentials{AK: testAK, SK: testSK},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close()) })
	return sim, &bundle{client: client}
}

// rawSDKClient builds a plain SDK client (the SDK's own builder) for the
// simulator; tamper, if not nil, rewrites each request after it was signed.
func rawSDKClient(t *testing.T, endpoint, ak, sk string, tamper func(*http.Request)) *v3.CodeArtsBuildClient {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if tamper != nil {
			r = r.Clone(r.Context())
			tamper(r)
		}
		return base.RoundTrip(r)
	})
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).
		WithProjectId("0123456789abcdef0123456789abcdef").SafeBuild()
	require.NoError(t, err)
	hc, err := v3.CodeArtsBuildClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithHttpRoundTripper(rt).WithTimeout(5 * time.Second)).
		SafeBuild()
	require.NoError(t, err)
	return v3.NewCodeArtsBuildClient(hc)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// send sends a raw request (unsigned unless header says otherwise) to the
// simulator and returns the status, the decoded body and the headers.
func send(t *testing.T, sim *codeartssim.Server, method, path string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, sim.URL()+path, nil)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body, resp.Header
}

// rawAnswer is an answer exactly as it came over the wire.
type rawAnswer struct {
	status      int
	contentType string
	body        string
}

// post sends POST path to the simulator signed as the SDK signs it (with
// ak/sk; ak "" sends it unsigned) and returns the raw answer.
func post(t *testing.T, sim *codeartssim.Server, path, ak, sk string) rawAnswer {
	t.Helper()
	sdkReq := request.NewHttpRequestBuilder().WithEndpoint(sim.URL()).WithMethod(http.MethodPost).WithPath(path).
		AddHeaderParam("Content-Type", "application/json").
		AddHeaderParam("X-Project-Id", "0123456789abcdef0123456789abcdef").
		Build()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, sim.URL()+path, nil)
	require.NoError(t, err)
	for k, v := range sdkReq.GetHeaderParams() {
		req.Header.Set(k, v)
	}
	if ak != "" {
		signed, err := signer.Sign(sdkReq, ak, sk)
		require.NoError(t, err)
		for k, v := range signed {
			req.Header.Set(k, v)
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	return rawAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(body)}
}

// recoverPath is the recover route of jobID.
func recoverPath(jobID string) string { return "/v3/jobs/" + jobID + "/recover" }
