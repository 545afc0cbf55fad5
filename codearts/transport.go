package codearts

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// callHeader carries a call's correlation key from Recover, through the SDK,
// to transport. The underscore keeps it out of the SDK's signature (the
// signer skips header names containing "_"), and transport removes it, so
// the request on the wire is exactly what the SDK would have sent.
const callHeader = "X_Codearts_Call"

// call is one Recover in flight: the context its HTTP request must use and
// the response headers the SDK's error type does not carry. The SDK invokes
// the RoundTripper synchronously from the caller's goroutine, so the fields
// are written before the SDK call returns and read after it.
type call struct {
	ctx        context.Context
	requestID  string
	retryAfter string
	date       string    // the response's Date header (worker doctor's clock check)
	at         time.Time // when the response headers arrived
	status     int       // the response's HTTP status
	// body is the first maxCapture bytes of the response body, as the SDK
	// read it: the answer is judged from it (the SDK's own parsing drops
	// 2xx error codes and stringified error bodies).
	body capture
}

// maxCapture bounds the part of a response body kept for judging the
// answer. Real answers are a few hundred bytes; a proxy's HTML page is cut.
const maxCapture = 16 << 10

// capture wraps a response body and keeps a copy of its first limit bytes
// (0: maxCapture) while the SDK reads it.
type capture struct {
	io.ReadCloser
	buf   []byte
	limit int
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	limit := c.limit
	if limit == 0 {
		limit = maxCapture
	}
	if room := limit - len(c.buf); room > 0 && n > 0 {
		c.buf = append(c.buf, p[:min(n, room)]...)
	}
	return n, err
}

// transport sits under the SDK's http.Client. It gives each correlated
// request its call's context, so cancelling the context aborts the request,
// and records the headers of its response.
type transport struct {
	base  *http.Transport
	calls sync.Map // correlation key → *call

	// timeout bounds requests the SDK makes on its own (IAM project lookup),
	// which carry no correlation key.
	timeout time.Duration
}

func newTransport(maxConns, regions int, timeout time.Duration) *transport {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &transport{
		base: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          maxConns * max(regions, 1),
			MaxIdleConnsPerHost:   maxConns,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   timeout,
			ExpectContinueTimeout: time.Second,
		},
		timeout: timeout,
	}
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Header.Get(callHeader)
	if key == "" {
		return t.roundTripUncorrelated(req)
	}
	ctx := req.Context() //nolint:contextcheck // replaced by the call's context just below
	v, _ := t.calls.Load(key)
	c, _ := v.(*call)
	if c != nil {
		// The SDK builds its requests on context.Background; the call's own
		// context (caller's ctx + per-call timeout) replaces it here.
		ctx = c.ctx
	}
	// A copy without the correlation header (a RoundTripper must not modify
	// req).
	out := req.Clone(ctx)
	out.Header.Del(callHeader)
	resp, err := t.base.RoundTrip(out)
	if resp != nil && c != nil {
		c.requestID = resp.Header.Get("X-Request-Id")
		c.retryAfter = resp.Header.Get("Retry-After")
		c.date = resp.Header.Get("Date")
		c.at = time.Now()
		c.status = resp.StatusCode
		c.body.ReadCloser = resp.Body
		resp.Body = &c.body
	}
	return resp, err
}

// roundTripUncorrelated bounds a request the SDK makes outside Recover by
// t.timeout, released when its body is closed or the timer fires.
func (t *transport) roundTripUncorrelated(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
