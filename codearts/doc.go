// Package codearts wraps the Huawei Cloud CodeArts Build SDK
// (huaweicloud-sdk-go-v3, services/codeartsbuild/v3) for the call the
// worker makes, EnableBuildJob (POST /v3/jobs/{job_id}/recover), and the
// reads a campaign makes (jobs.go): ShowJobListByProjectId, ListJob and
// ShowDisable, through the same transport and the same answer judging.
//
// It owns these invariants:
//
//   - Every call is bounded by Config.Timeout and by the caller's context:
//     the SDK takes no context, so a RoundTripper installed under the SDK
//     finds the call's context through a per-call correlation header and
//     sends the HTTP request with it. When the context ends the request is
//     really aborted; Recover starts no goroutine of its own.
//   - Non-2xx answers become *APIError with the status, the body's
//     error_code and error_msg, and the X-Request-Id and Retry-After headers
//     of that exact response (the SDK's error type carries no headers).
//   - The SDK's own retries stay off: the caller decides what an error means.
//   - A read's answer is read from its raw body, not the SDK's model:
//     both list shapes ({"jobs":…} and {"result":{"job_list":…}}) are
//     understood, and an answer that says nothing readable wraps
//     ErrUnreadable rather than passing for an empty page.
//   - Credentials never appear in an error, a log line or a formatted value.
//   - One SDK client per region, created on first use and reused; replacing
//     the credentials (ReloadCredentials) drops them so the next call builds
//     fresh ones, while calls in flight finish with the old ones.
//
// Client.Check is the one read: ShowJobListByProjectId with page size 1,
// through the same transport, for `worker doctor` to prove the credentials,
// the region and the endpoint and to read the API's Date header.
//
// The package does not log errors it returns.
package codearts
