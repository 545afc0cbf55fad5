package codearts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	v3 "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/model"
)

// MaxPageSize is the largest page the list reads may ask for.
const MaxPageSize = 100

// maxReadCapture bounds a read's answer: a page of 100 jobs is tens of
// kilobytes; more than this is not an answer the reads understand.
const maxReadCapture = 4 << 20

// ErrAnswerTooLarge is wrapped by a read whose answer exceeded 4 MiB.
var ErrAnswerTooLarge = errors.New("answer larger than 4 MiB")

// ErrUnreadable is wrapped by a read whose 2xx JSON answer does not say
// what the read asks (no job list, a job without an id): retrying may help
// once (a proxy), but not for ever.
var ErrUnreadable = errors.New("unreadable answer")

// JobSummary is one job of a list read.
type JobSummary struct {
	ID        string `json:"job_id"`
	Name      string `json:"name,omitempty"`
	ProjectID string `json:"project_id,omitempty"` // "" when the answer does not say
	Creator   string `json:"creator,omitempty"`
	Disabled  bool   `json:"disabled"`
}

// Page is one page of a list read.
type Page struct {
	Jobs []JobSummary
	// Total is the number of jobs the list holds, as the answer says; -1
	// when it does not say.
	Total int
	// Shape names the answer's shape: "jobs" ({"jobs":[…],"total":N}, the
	// SDK's model of ShowJobListByProjectId) or "result.job_list"
	// ({"result":{"job_list":[…],"total":N}}, ListJob's model and what live
	// v3 answers are known to send).
	Shape string
}

// JobState is what ShowDisable says of a job.
type JobState struct {
	Disabled bool
	Name     string
	// DisabledBy, Reason and DisabledAt say who disabled the job, why and
	// when, when the answer says (zero otherwise).
	DisabledBy string
	Reason     string
	DisabledAt time.Time
}

// ListProjectJobs reads one page of the project's jobs
// (ShowJobListByProjectId, GET /v3/{project_id}/jobs) in the default
// region. pageIndex is passed as given: the SDK's model counts pages from 1,
// live answers in the result.job_list shape from 0 (see Page.Shape); the
// caller pages defensively. The call is bounded and classified like
// Recover: a failure is an *APIError or a transport error.
func (c *Client) ListProjectJobs(ctx context.Context, projectID string, pageIndex, pageSize int) (Page, error) {
	what := "list jobs of project " + truncate(projectID, 64)
	if err := checkPage(pageIndex, pageSize); err != nil {
		return Page{}, fmt.Errorf("%s: %w", what, err)
	}
	if projectID == "" || strings.ContainsAny(projectID, "/?#") {
		return Page{}, fmt.Errorf("%s: invalid project id", what)
	}
	return c.readPage(ctx, what, func(sdk *v3.CodeArtsBuildClient, hdr map[string]string) error {
		inv := sdk.ShowJobListByProjectIdInvoker(&model.ShowJobListByProjectIdRequest{
			ProjectId: projectID, PageIndex: int32(pageIndex), PageSize: int32(pageSize), //nolint:gosec // bounded by checkPage
		})
		inv.AddHeaders(hdr)
		_, err := inv.Invoke()
		return err
	})
}

// readPage makes one list read in the default region and parses its page
// from the raw body; what names the read in errors.
func (c *Client) readPage(ctx context.Context, what string, invoke func(*v3.CodeArtsBuildClient, map[string]string) error) (Page, error) {
	body, err := c.read(ctx, "", invoke)
	if err != nil {
		return Page{}, fmt.Errorf("%s: %w", what, err)
	}
	p, err := ParsePage(body)
	if err != nil {
		return Page{}, fmt.Errorf("%s: %w: %w", what, ErrUnreadable, err)
	}
	return p, nil
}

// ListJobs reads one page of every job the credentials see, across
// projects (ListJob, GET /v1/job/list), in the default region; each job
// says its project. Paging and errors as ListProjectJobs.
func (c *Client) ListJobs(ctx context.Context, pageIndex, pageSize int) (Page, error) {
	const what = "list jobs"
	if err := checkPage(pageIndex, pageSize); err != nil {
		return Page{}, fmt.Errorf("%s: %w", what, err)
	}
	return c.readPage(ctx, what, func(sdk *v3.CodeArtsBuildClient, hdr map[string]string) error {
		idx, size := int32(pageIndex), int32(pageSize) //nolint:gosec // bounded by checkPage
		inv := sdk.ListJobInvoker(&model.ListJobRequest{PageIndex: &idx, PageSize: &size})
		inv.AddHeaders(hdr)
		_, err := inv.Invoke()
		return err
	})
}

// JobState reads whether jobID is disabled (ShowDisable, GET
// /v1/job/{job_id}/check/disable) in region ("" = the default region).
// Errors as Recover's.
func (c *Client) JobState(ctx context.Context, jobID, region string) (JobState, error) {
	what := "check " + truncate(jobID, 64)
	if !ValidJobID(jobID) {
		return JobState{}, fmt.Errorf("%s: %w", what, ErrInvalidJobID)
	}
	body, err := c.read(ctx, region, func(sdk *v3.CodeArtsBuildClient, hdr map[string]string) error {
		inv := sdk.ShowDisableInvoker(&model.ShowDisableRequest{JobId: jobID})
		inv.AddHeaders(hdr)
		_, err := inv.Invoke()
		return err
	})
	if err != nil {
		return JobState{}, fmt.Errorf("%s: %w", what, err)
	}
	st, err := ParseJobState(body)
	if err != nil {
		return JobState{}, fmt.Errorf("%s: %w: %w", what, ErrUnreadable, err)
	}
	return st, nil
}

func checkPage(index, size int) error {
	if index < 0 || index > math.MaxInt32 {
		return fmt.Errorf("page index %d out of range", index)
	}
	if size < 1 || size > MaxPageSize {
		return fmt.Errorf("page size %d is not 1 to %d", size, MaxPageSize)
	}
	return nil
}

// read makes one read call through the SDK with Recover's transport: the
// per-call timeout, the caller's context, the body as it came. It returns
// the body of a 2xx JSON answer without an error code; any other answer is
// an *APIError built as Recover builds it. A 2xx the SDK could not read
// into its model is still read here: the body, not the model, is the
// answer.
func (c *Client) read(ctx context.Context, region string, invoke func(*v3.CodeArtsBuildClient, map[string]string) error) ([]byte, error) {
	body, _, err := c.readCall(ctx, region, invoke)
	return body, err
}

// callMeta is what a read's answer said besides its body: its status (0:
// no answer), the request id, the Date header and when the headers
// arrived by the local clock.
type callMeta struct {
	status    int
	requestID string
	date      string
	at        time.Time
}

// readCall is read, also returning the answer's callMeta (for doctor's
// clock and request id).
func (c *Client) readCall(ctx context.Context, region string, invoke func(*v3.CodeArtsBuildClient, map[string]string) error) (body []byte, meta callMeta, err error) {
	if region == "" {
		region = c.cfg.Region
	}
	if !c.AllowedRegion(region) {
		return nil, meta, fmt.Errorf("region %q: %w", truncate(region, 64), ErrUnknownRegion)
	}
	if err := ctx.Err(); err != nil {
		return nil, meta, err
	}
	sdk, err := c.sdkClient(region)
	if err != nil {
		return nil, meta, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	cl := &call{ctx: ctx, body: capture{limit: maxReadCapture + 1}}
	key := strconv.FormatUint(c.seq.Add(1), 36)
	c.rt.calls.Store(key, cl)
	defer c.rt.calls.Delete(key)

	err = invoke(sdk, map[string]string{callHeader: key})
	var sre *sdkerr.ServiceResponseError
	status := cl.status
	meta = callMeta{status: status, requestID: cl.requestID, date: cl.date, at: cl.at}
	switch {
	case err == nil:
	case errors.As(err, &sre):
		status = sre.StatusCode
		meta.status = status
	case cl.status >= 200 && cl.status < 300 && len(cl.body.buf) > 0:
		// The SDK failed to read a 2xx into its model; judge the body.
	default:
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return nil, meta, err
	}
	if len(cl.body.buf) > maxReadCapture {
		return nil, meta, fmt.Errorf("%w: %w", ErrUnreadable, ErrAnswerTooLarge)
	}
	ans := parseAnswer(cl.body.buf)
	if status >= 200 && status < 300 && ans.JSON && ans.ErrorCode == "" && ans.Status != "fail" {
		return cl.body.buf, meta, nil
	}
	code, msg := ans.ErrorCode, ans.ErrorMsg
	if code == "" && sre != nil {
		code = sre.ErrorCode
	}
	switch {
	case status >= 200 && status < 300 && !ans.JSON:
		msg = "read not answered: body is not JSON: " + msg
	case status >= 200 && status < 300:
		msg = "read not answered: body status " + strconv.Quote(truncate(ans.Status, 32)) + ": " + msg
	case msg == "" && sre != nil:
		msg = summarize([]byte(sre.ErrorMessage))
	}
	sdkRequestID := ""
	if sre != nil {
		sdkRequestID = sre.RequestId
	}
	apiErr := c.apiError(cl, status, code, msg, sdkRequestID)
	meta.requestID = apiErr.RequestID
	return nil, meta, apiErr
}

// ParsePage reads a list answer in either shape ({"jobs":[…],"total":N} or
// {"result":{"job_list":[…],"total":N}}), defensively: a job's id may be
// "id" or "job_id", "disabled" a boolean, 0/1 or a string of either, and a
// missing total is -1. A job without an id is an error: a page that cannot
// be read must not be skipped.
func ParsePage(body []byte) (Page, error) {
	var top map[string]json.RawMessage
	if err := decode(body, &top); err != nil {
		return Page{}, fmt.Errorf("list answer: %w", err)
	}
	p := Page{Total: -1}
	raw, holder := top["jobs"], top
	p.Shape = "jobs"
	if res, ok := top["result"]; ok && raw == nil {
		var inner map[string]json.RawMessage
		if err := decode(res, &inner); err != nil {
			return Page{}, fmt.Errorf("list answer: result: %w", err)
		}
		holder, p.Shape = inner, "result.job_list"
		if raw = inner["job_list"]; raw == nil {
			raw = inner["jobs"]
		}
	} else if raw == nil {
		raw, p.Shape = top["job_list"], "job_list"
	}
	if t, ok := holder["total"]; ok {
		n, err := number(t)
		if err != nil {
			return Page{}, fmt.Errorf("list answer: total: %w", err)
		}
		p.Total = int(n)
	}
	if raw == nil || string(raw) == "null" {
		if p.Total < 0 {
			return Page{}, errors.New("list answer: neither jobs nor result.job_list")
		}
		return p, nil // an empty page
	}
	var items []map[string]json.RawMessage
	if err := decode(raw, &items); err != nil {
		return Page{}, fmt.Errorf("list answer: jobs: %w", err)
	}
	p.Jobs = make([]JobSummary, 0, len(items))
	for i, it := range items {
		j := JobSummary{ID: text(it["id"]), Name: text(it["job_name"]), ProjectID: text(it["project_id"]), Creator: text(it["job_creator"])}
		if j.ID == "" {
			j.ID = text(it["job_id"])
		}
		if j.ID == "" {
			return Page{}, fmt.Errorf("list answer: job %d has no id", i)
		}
		if j.Creator == "" {
			j.Creator = text(it["user_name"])
		}
		d, err := flag(it["disabled"])
		if err != nil {
			return Page{}, fmt.Errorf("list answer: job %s: disabled: %w", truncate(j.ID, 64), err)
		}
		j.Disabled = d
		p.Jobs = append(p.Jobs, j)
	}
	return p, nil
}

// ParseJobState reads a ShowDisable answer: result.disabled (1/0, or a
// boolean), forbiddener, reson (the API's spelling; "reason" too),
// forbidden_time (milliseconds since the epoch, seconds when small, or an
// RFC 3339 or "2006-01-02 15:04:05" UTC string).
func ParseJobState(body []byte) (JobState, error) {
	var top map[string]json.RawMessage
	if err := decode(body, &top); err != nil {
		return JobState{}, fmt.Errorf("disable answer: %w", err)
	}
	res := top
	if r, ok := top["result"]; ok {
		if err := decode(r, &res); err != nil {
			return JobState{}, fmt.Errorf("disable answer: result: %w", err)
		}
	}
	raw, ok := res["disabled"]
	if !ok {
		return JobState{}, errors.New("disable answer: no result.disabled")
	}
	d, err := flag(raw)
	if err != nil {
		return JobState{}, fmt.Errorf("disable answer: disabled: %w", err)
	}
	st := JobState{Disabled: d, Name: text(res["job_name"]), DisabledBy: text(res["forbiddener"]), Reason: text(res["reson"])}
	if st.Reason == "" {
		st.Reason = text(res["reason"])
	}
	st.DisabledAt = stamp(res["forbidden_time"])
	return st, nil
}

// decode unmarshals JSON that may arrive as a JSON string holding JSON.
func decode(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var inner string
		if err := json.Unmarshal(b, &inner); err == nil {
			b = []byte(inner)
		}
	}
	return json.Unmarshal(b, v)
}

// text is a JSON string's value, a number's text, or "".
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func number(raw json.RawMessage) (float64, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		return f, nil
	}
	f, err := strconv.ParseFloat(text(raw), 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", truncate(string(raw), 32))
	}
	return f, nil
}

// flag reads a boolean sent as true/false, 1/0 or a string of either;
// absent or null is false.
func flag(raw json.RawMessage) (bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	switch text(raw) {
	case "1", "true", "TRUE", "True":
		return true, nil
	case "0", "false", "FALSE", "False", "":
		return false, nil
	}
	return false, fmt.Errorf("%s is not a boolean", truncate(string(raw), 32))
}

// stamp reads a time as epoch milliseconds (seconds below 1e11) or text;
// zero when absent or unreadable.
func stamp(raw json.RawMessage) time.Time {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}
	}
	if f, err := number(raw); err == nil {
		switch {
		case f <= 0:
			return time.Time{}
		case f < 1e11:
			return time.Unix(int64(f), 0).UTC()
		default:
			return time.UnixMilli(int64(f)).UTC()
		}
	}
	s := text(raw)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
