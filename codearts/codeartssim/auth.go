package codeartssim

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/signer"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/request"
)

const (
	sdkHmacSha256 = "SDK-HMAC-SHA256"
	headerXDate   = "X-Sdk-Date"
	headerToken   = "X-Auth-Token" //nolint:gosec // a header name, not a credential
)

// authenticate checks the request's X-Auth-Token or AK/SK signature against
// cfg. It returns nil when the request may proceed, or the reason it may not
// (safe to show the client: it never contains a secret).
func authenticate(cfg *settings, r *http.Request, body []byte, now time.Time) error {
	if cfg.ak == "" && cfg.token == "" {
		return nil
	}
	if tok := r.Header.Get(headerToken); tok != "" {
		if cfg.token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(cfg.token)) == 1 {
			return nil
		}
		return errors.New("token verification failed")
	}
	if r.Header.Get("Authorization") == "" {
		return errors.New("no Authorization or X-Auth-Token header")
	}
	if cfg.ak == "" {
		return errors.New("AK/SK authentication is not accepted")
	}
	return verifySignature(r, body, cfg.ak, cfg.sk, now, cfg.maxSkew)
}

// verifySignature recomputes the SDK-HMAC-SHA256 signature of r with the
// SDK's own signer, over the headers the client says it signed, and compares
// the Authorization headers in constant time.
func verifySignature(r *http.Request, body []byte, ak, sk string, now time.Time, maxSkew time.Duration) error {
	authz := r.Header.Get("Authorization")
	alg, params, _ := strings.Cut(authz, " ")
	if alg != sdkHmacSha256 {
		return fmt.Errorf("unsupported signing algorithm")
	}
	var access, signed string
	for p := range strings.SplitSeq(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "Access":
			access = v
		case "SignedHeaders":
			signed = v
		}
	}
	if subtle.ConstantTimeCompare([]byte(access), []byte(ak)) != 1 {
		return errors.New("verify aksk signature fail: unknown access key")
	}

	date := r.Header.Get(headerXDate)
	t, err := time.Parse(signer.BasicDateFormat, date)
	if err != nil {
		return errors.New("verify aksk signature fail: missing or malformed X-Sdk-Date")
	}
	if skew := now.Sub(t); skew > maxSkew || skew < -maxSkew {
		return errors.New("verify aksk signature fail: X-Sdk-Date is too far from the server time")
	}
	names := strings.Split(signed, ";")
	if !slices.Contains(names, "x-sdk-date") {
		return errors.New("verify aksk signature fail: x-sdk-date is not signed")
	}

	// Rebuild the request as the SDK's signer saw it. Header keys are the
	// canonical forms the SDK uses (it looks X-Sdk-Date up by that exact key).
	b := request.NewHttpRequestBuilder().
		WithEndpoint("http://" + r.Host).
		WithMethod(r.Method).
		WithPath(r.URL.Path)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		b.AddHeaderParam("Content-Type", ct) // unsigned, but decides whether the payload is hashed
	}
	for _, name := range names {
		if name == "host" {
			b.AddHeaderParam("Host", r.Host)
			continue
		}
		b.AddHeaderParam(http.CanonicalHeaderKey(name), strings.Join(r.Header.Values(name), ","))
	}
	for k, vs := range r.URL.Query() {
		if len(vs) == 1 {
			b.AddQueryParam(k, reflect.ValueOf(vs[0]))
		} else {
			b.AddQueryParam(k, reflect.ValueOf(vs))
		}
	}
	if len(body) > 0 {
		b.WithBody("", string(body))
	}
	want, err := signer.Sign(b.Build(), ak, sk)
	if err != nil {
		return errors.New("verify aksk signature fail")
	}
	if subtle.ConstantTimeCompare([]byte(want["Authorization"]), []byte(authz)) != 1 {
		return errors.New("verify aksk signature fail")
	}
	return nil
}
