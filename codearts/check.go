package codearts

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	v3 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3"
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
	_, meta, err := c.readCall(ctx, region, func(sdk *v3.CodeArtsBuildClient, hdr map[string]string) error {
		inv := sdk.ShowJobListByProjectIdInvoker(&model.ShowJobListByProjectIdRequest{ProjectId: project, PageIndex: 0, PageSize: 1})
		inv.AddHeaders(hdr)
		_, err := inv.Invoke()
		return err
	})
	chk.StatusCode, chk.RequestID, chk.At = meta.status, meta.requestID, meta.at
	if d, perr := http.ParseTime(meta.date); perr == nil {
		chk.Date = d
	}
	if err != nil {
		return chk, fmt.Errorf("list jobs: %w", err)
	}
	return chk, nil
}
