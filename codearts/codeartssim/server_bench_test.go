package codeartssim_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// signedRequest builds a recover request signed by the SDK's signer, as the
// SDK would send it.
func signedRequest(b *testing.B) *http.Request {
	b.Helper()
	const host = "127.0.0.1:8081"
	path := "/v3/jobs/" + jobA + "/recover"
	sdkReq := request.NewHttpRequestBuilder().WithEndpoint("http://"+host).WithMethod(http.MethodPost).WithPath(path).
		AddHeaderParam("Content-Type", "application/json").
		AddHeaderParam("X-Project-Id", "0123456789abcdef0123456789abcdef").
		AddHeaderParam("User-Agent", "huaweicloud-usdk-go/3.0").
		Build()
	add, err := signer.Sign(sdkReq, testAK, testSK)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "http://"+host+path, nil)
	for k, v := range sdkReq.GetHeaderParams() {
		r.Header.Set(k, v)
	}
	for k, v := range add {
		r.Header.Set(k, v)
	}
	return r
}

// BenchmarkServeRecover measures the simulator's own cost for a signed
// recover: signature verification, records and the answer.
func BenchmarkServeRecover(b *testing.B) {
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK))
	r := signedRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
