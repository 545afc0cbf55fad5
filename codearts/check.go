package codearts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
)

// Check is what one cheap authenticated read of the API said, for
// `worker doctor`.
type Check struct {
	// Region and Endpoint are where the read went, Project the project
	// whose jobs it listed.
	Region   string
	Endpoint string
	Project  string
	// StatusCode is the HTTP status (0: no answer).
	StatusCode int
	// RequestID is the API's request id.
	RequestID string
	// Date is the answer's Date header (zero when absent or unreadable) and
	// At when the answer's headers arrived, by the local clock: their
	// difference is the local clock's skew against the API's, within the
	// answer's latency.
	Date time.Time
	At   time.Time
}

// Check lists at most one build job of project (the CodeArts project id;
// "" = the client's project id, else a project id of 32 zeros, whose
// "no such project" answer proves authentication as well) in region ("" =
// the default region)
// through the SDK (ShowJobListByProjectId, GET /v3/{project_id}/jobs,
// page size 1): a read that proves the credentials, the region and the
// endpoint without changing anything.
//
// The error is nil for a 2xx. An answer from the API or its gateway is an
// *APIError, as Recover returns: 401 (signature, key or token), 403 (IAM
// permission), 404 APIG.0101 (the API is not published at this endpoint:
// wrong region or endpoint); a CodeArts error (CB.*) about the project
// itself still proves that the request was authenticated and routed. A
// transport error is wrapped as it is. The Check is filled as far as the
// read got, error or not.
func (c *Client) Check(ctx context.Context, region, project string) (Check, error) {
	if region == "" {
		region = c.cfg.Region
	}
	chk := Check{Region: region, Endpoint: c.endpoints[region]}
	if !c.AllowedRegion(region) {
		return chk, fmt.Errorf("region %q: %w", truncate(region, 64), ErrUnknownRegion)
	}
	if project == "" {
		project = c.cfg.ProjectID
	}
	if project == "" {
		c.mu.RLock()
		project = c.creds.ProjectID
		c.mu.RUnlock()
	}
	if project == "" {
		project = strings.Repeat("0", 32)
	}
	chk.Project = project
	sdk, err := c.sdkClient(region)
	if err != nil {
		return chk, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cl := &call{ctx: ctx}
	key := strconv.FormatUint(c.seq.Add(1), 36)
	c.rt.calls.Store(key, cl)
	defer c.rt.calls.Delete(key)

	inv := sdk.ShowJobListByProjectIdInvoker(&model.ShowJobListByProjectIdRequest{ProjectId: project, PageIndex: 0, PageSize: 1})
	inv.AddHeaders(map[string]string{callHeader: key})
	resp, err := inv.Invoke()
	chk.RequestID, chk.At = cl.requestID, cl.at
	if d, perr := http.ParseTime(cl.date); perr == nil {
		chk.Date = d
	}
	var sre *sdkerr.ServiceResponseError
	switch {
	case err == nil:
		chk.StatusCode = resp.HttpStatusCode
	case errors.As(err, &sre):
		chk.StatusCode = sre.StatusCode
	default:
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return chk, fmt.Errorf("list jobs: %w", err)
	}
	if chk.StatusCode >= 200 && chk.StatusCode < 300 {
		return chk, nil
	}
	ans := parseAnswer(cl.body.buf)
	code, msg := ans.ErrorCode, ans.ErrorMsg
	if code == "" && sre != nil {
		code = sre.ErrorCode
	}
	if msg == "" && sre != nil {
		msg = summarize([]byte(sre.ErrorMessage))
	}
	if msg == "" {
		msg = http.StatusText(chk.StatusCode)
	}
	sdkRequestID := ""
	if sre != nil {
		sdkRequestID = sre.RequestId
	}
	apiErr := c.apiError(cl, chk.StatusCode, code, msg, sdkRequestID)
	chk.RequestID = apiErr.RequestID
	return chk, fmt.Errorf("list jobs: %w", apiErr)
}
