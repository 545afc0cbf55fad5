package codearts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/impl"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	v3 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
	"go.uber.org/zap"
)

const userAgent = "codearts-recover-worker"

// Client recovers CodeArts Build jobs. It is safe for concurrent use.
type Client struct {
	cfg       Config
	log       *zap.Logger
	endpoints map[string]string // allowed region → endpoint
	rt        *transport
	http      *config.HttpConfig // shared by the per-region SDK clients; read-only
	seq       atomic.Uint64      // correlation keys

	mu      sync.RWMutex
	creds   Credentials
	clients map[string]*regionClient // dropped whole when credentials change
}

// regionClient builds one region's SDK client once; a failed build (IAM
// unreachable) is retried by the next call.
type regionClient struct {
	mu  sync.Mutex
	sdk atomic.Pointer[v3.CodeArtsBuildClient]
}

// NewClient validates cfg, applies defaults, and loads credentials from the
// environment when cfg.Credentials is zero. SDK clients are built lazily, one
// per region, on the first call to that region.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	creds := cfg.Credentials
	if creds.IsZero() {
		var err error
		if creds, err = LoadCredentials(); err != nil {
			return nil, fmt.Errorf("codearts: %w", err)
		}
	}

	endpoints := make(map[string]string, len(cfg.Regions)+1)
	for _, r := range append([]string{cfg.Region}, cfg.Regions...) {
		ep, err := cfg.endpoint(r)
		if err != nil {
			return nil, fmt.Errorf("codearts: %w", err)
		}
		endpoints[r] = ep
	}

	rt := newTransport(cfg.MaxConns, len(endpoints), cfg.Timeout)
	httpCfg := config.DefaultHttpConfig().
		WithHttpRoundTripper(rt).
		WithRetries(0). // backoff belongs to the caller
		WithTimeout(0). // transport bounds each call; a client timeout would cost a goroutine per call
		WithUserAgent(userAgent)

	c := &Client{
		cfg:       cfg,
		log:       cfg.Logger,
		endpoints: endpoints,
		rt:        rt,
		http:      httpCfg,
		creds:     creds,
		clients:   make(map[string]*regionClient),
	}
	c.log.Debug("codearts client ready",
		zap.String("region", cfg.Region), zap.Strings("regions", c.Regions()),
		zap.String("endpoint", cfg.Endpoint), zap.Duration("timeout", cfg.Timeout),
		zap.Object("credentials", creds))
	return c, nil
}

// Regions returns the allowed regions, the default one first.
func (c *Client) Regions() []string {
	out := []string{c.cfg.Region}
	for r := range c.endpoints {
		if r != c.cfg.Region {
			out = append(out, r)
		}
	}
	return out
}

// Endpoint is the endpoint URL of region's API ("" = the default region),
// "" for a region that is not allowed.
func (c *Client) Endpoint(region string) string {
	if region == "" {
		region = c.cfg.Region
	}
	return c.endpoints[region]
}

// AllowedRegion reports whether a request may name region r; "" stands for
// the default region and is always allowed.
func (c *Client) AllowedRegion(r string) bool {
	if r == "" {
		return true
	}
	_, ok := c.endpoints[r]
	return ok
}

// Recover calls EnableBuildJob (POST /v3/jobs/{job_id}/recover) for jobID in
// region ("" = the default region) and returns the API's request id.
//
// The call ends within Config.Timeout or when ctx is done, whichever comes
// first, with an error satisfying errors.Is(err, context.DeadlineExceeded) or
// context.Canceled. Only a 2xx whose body says {"status":"success"} without
// an error_code is a success; any other answer (a non-2xx, a 2xx saying
// "fail" or carrying an error_code, a 2xx page that is not JSON) is an
// *APIError with the code and message read from the raw body (plain JSON, a
// JSON string holding JSON, or a one-line summary of HTML or text). An
// unknown region wraps ErrUnknownRegion and an invalid id ErrInvalidJobID
// (neither is sent);
// transport errors are wrapped as they are (*url.Error, *net.OpError, …).
func (c *Client) Recover(ctx context.Context, jobID, region string) (requestID string, err error) {
	if !ValidJobID(jobID) {
		return "", fmt.Errorf("recover %q: %w", truncate(jobID, 64), ErrInvalidJobID)
	}
	if region == "" {
		region = c.cfg.Region
	}
	if !c.AllowedRegion(region) {
		return "", wrap(jobID, fmt.Errorf("region %q: %w", truncate(region, 64), ErrUnknownRegion))
	}
	if err := ctx.Err(); err != nil {
		return "", wrap(jobID, err)
	}
	sdk, err := c.sdkClient(region)
	if err != nil {
		return "", wrap(jobID, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cl := &call{ctx: ctx}
	key := strconv.FormatUint(c.seq.Add(1), 36)
	c.rt.calls.Store(key, cl)
	defer c.rt.calls.Delete(key)

	inv := sdk.EnableBuildJobInvoker(&model.EnableBuildJobRequest{JobId: jobID})
	inv.AddHeaders(map[string]string{callHeader: key})
	resp, err := inv.Invoke()
	var sre *sdkerr.ServiceResponseError
	status := 0
	switch {
	case err == nil:
		status = resp.HttpStatusCode
	case errors.As(err, &sre):
		status = sre.StatusCode
	default:
		// The SDK passes transport errors through (*url.Error wrapping the
		// context's error on abort). Make sure an abort is recognisable even
		// if it surfaced as something else.
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return cl.requestID, wrap(jobID, err)
	}

	// The answer is judged from the body as it came, not from the SDK's
	// reading of it: a 2xx says success only in its body.
	ans := parseAnswer(cl.body.buf)
	if status >= 200 && status < 300 && ans.applied() {
		return cl.requestID, nil
	}
	code, msg := ans.ErrorCode, ans.ErrorMsg
	if code == "" && sre != nil {
		code = sre.ErrorCode
	}
	switch {
	case status >= 200 && status < 300 && code == "" && ans.JSON:
		// 200 {"status":"fail"} (or no status at all): not applied.
		msg = notApplied("body status " + strconv.Quote(truncate(ans.Status, 32)) + ": " + msg)
	case status >= 200 && status < 300 && !ans.JSON:
		// An HTML page from a proxy or firewall: not known to be applied.
		msg = notApplied("body is not JSON: " + msg)
	case msg == "" && sre != nil:
		msg = summarize([]byte(sre.ErrorMessage))
	case msg == "":
		// The SDK lets 1xx/3xx through as success; the job was not recovered.
		msg = http.StatusText(status)
	}
	sdkRequestID := ""
	if sre != nil {
		sdkRequestID = sre.RequestId
	}
	apiErr := c.apiError(cl, status, code, msg, sdkRequestID)
	return apiErr.RequestID, wrap(jobID, apiErr)
}

// notApplied prefixes the message of a 2xx answer that does not say the
// recover took effect.
func notApplied(msg string) string {
	return "recover not applied: " + strings.TrimSuffix(strings.TrimSpace(msg), ":")
}

func (c *Client) apiError(cl *call, status int, code, msg, sdkRequestID string) *APIError {
	e := &APIError{
		StatusCode: status,
		ErrorCode:  code,
		ErrorMsg:   truncate(msg, maxErrorMsg),
		RequestID:  cl.requestID,
		RetryAfter: parseRetryAfter(cl.retryAfter, cl.at),
	}
	if e.RequestID == "" {
		e.RequestID = sdkRequestID
	}
	return e
}

// sdkClient returns the region's SDK client, building it on first use.
func (c *Client) sdkClient(region string) (*v3.CodeArtsBuildClient, error) {
	c.mu.RLock()
	rc, creds := c.clients[region], c.creds
	c.mu.RUnlock()
	if rc == nil {
		c.mu.Lock()
		if rc = c.clients[region]; rc == nil {
			rc = &regionClient{}
			c.clients[region] = rc
		}
		creds = c.creds
		c.mu.Unlock()
	}
	if sdk := rc.sdk.Load(); sdk != nil {
		return sdk, nil
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	if sdk := rc.sdk.Load(); sdk != nil {
		return sdk, nil
	}
	sdk, err := c.buildSDKClient(region, creds)
	if err != nil {
		return nil, err
	}
	rc.sdk.Store(sdk)
	return sdk, nil
}

func (c *Client) buildSDKClient(region string, creds Credentials) (*v3.CodeArtsBuildClient, error) {
	projectID := c.cfg.ProjectID
	if projectID == "" {
		projectID = creds.ProjectID
	}
	hc := impl.NewDefaultHttpClient(c.http)
	cred := creds.sdkCredential(projectID)
	if projectID == "" && c.cfg.Endpoint == "" {
		// Asks IAM for the region's project id, as the SDK's builder would.
		if _, err := cred.ProcessAuthParams(hc, region); err != nil {
			return nil, fmt.Errorf("region %s: resolve project id: %w", region, err)
		}
	}
	endpoint := c.endpoints[region]
	hcc := core.NewHcHttpClient(hc).
		WithEndpoints([]string{endpoint}).
		WithCredential(cred).
		WithErrorHandler(sdkerr.DefaultErrorHandler{})
	c.log.Debug("codearts sdk client built", zap.String("region", region), zap.String("endpoint", endpoint))
	return v3.NewCodeArtsBuildClient(hcc), nil
}

// ReloadCredentials reads the credentials again (LoadCredentials) and
// replaces the client's: calls started afterwards sign with the new ones,
// calls in flight finish with the old. Use it when keys are rotated.
func (c *Client) ReloadCredentials() error {
	creds, err := LoadCredentials()
	if err != nil {
		return fmt.Errorf("codearts: reload: %w", err)
	}
	return c.SetCredentials(creds)
}

// SetCredentials replaces the client's credentials, as ReloadCredentials
// does, with the given ones.
func (c *Client) SetCredentials(creds Credentials) error {
	if err := creds.Validate(); err != nil {
		return fmt.Errorf("codearts: credentials: %w", err)
	}
	c.mu.Lock()
	c.creds = creds
	c.clients = make(map[string]*regionClient)
	c.mu.Unlock()
	c.log.Info("codearts credentials replaced", zap.Object("credentials", creds))
	return nil
}

// Close releases idle connections. Calls may still be made afterwards; they
// open new ones.
func (c *Client) Close() error {
	c.rt.base.CloseIdleConnections()
	return nil
}
