// Package codeartssim is a simulated CodeArts Build API for the recover call,
// POST /v3/jobs/{job_id}/recover, with the API Gateway's behaviour in front
// of it: AK/SK signature checks, throttling, outages and scripted faults. It
// backs `worker demo` and `worker simulate` and the integration tests, which
// drive the real SDK against it on loopback.
//
// # Answers
//
//	200 {"status":"success"}                 the job is recovered (counted in Stats)
//	400 CB.00060200  job_id is not 32 ASCII letters or digits
//	401 APIGW.0301   missing, malformed, stale (X-Sdk-Date skew) or wrong signature or token
//	403 CB.00060201  no permission on the job (prefix outcome or script)
//	404 CB.00060204  the job does not exist (prefix outcome or script)
//	404 APIG.0101    no such API (any other path or method)
//	429 APIG.0308    gateway throttling, with Retry-After in seconds
//	500 CB.00060211  CodeArts' own throttling, "Too many requests"
//	500 CB.00060001  internal error
//	502 APIG.0202    backend unavailable
//	503 APIG.0203    service unavailable (outage)
//	504 APIG.0201    backend timeout
//
// Every response carries a unique X-Request-Id; errors have the body
// {"error_code":"…","error_msg":"…"}.
//
// # Order of checks
//
// A recover request goes through: authentication (when credentials or a
// token are configured) → latency → outage → admission rate limit → job id
// syntax → the job's script → random gateway throttling (429) → random
// backend throttling (500 CB.00060211) → random 5xx → prefix outcomes →
// apply-then-hang → success. Only requests that pass the job id syntax
// check are counted per job.
//
// # Concurrency
//
// The configuration is an immutable snapshot swapped atomically by Configure
// and the setters, so tests can flip faults mid-run. Counters are atomic and
// per-job records live in a sync.Map; the hot path takes no server-wide lock
// unless a random fault is configured (the seeded generator is shared).
//
// GET /stats answers the Stats snapshot as JSON (?jobs=0 leaves out the
// per-job map).
package codeartssim
