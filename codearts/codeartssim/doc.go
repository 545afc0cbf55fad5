// Package codeartssim is a simulated CodeArts Build API for the recover call,
// POST /v3/jobs/{job_id}/recover, with the API Gateway's behaviour in front
// of it: AK/SK signature checks, throttling, outages and scripted faults. It
// backs `worker demo` and `worker simulate` and the integration tests, which
// drive the real SDK against it on loopback.
//
// # Answers
//
// The answers of the real API (SPEC's answers table), each switchable:
//
//	200 {"status":"success"}     the job is recovered (the only answer that recovers it)
//	200 {"status":"fail"}        not applied (WithFailStatus)
//	200 CB.00060101              an error body on a 200: not applied (WithErrorOn200)
//	200 text/html                a proxy's page: not applied (WithHTMLSuccess)
//	400 CB.00060200              invalid parameter (StandardOutcome(400), prefix "400")
//	400 CB.00060201              job_id is not 32 ASCII letters or digits
//	401 APIG.0301                missing, malformed, stale (X-Sdk-Date skew) or wrong
//	                             signature or token; every call in WithUnauthorizedWindow
//	403 (no error_code)          no permission on this one job (prefix "403")
//	403 APIG.0302                the IAM user may not call the API (IAMDenied)
//	404 CB.00060214              the job does not exist (prefix "404")
//	404 APIG.0101                API not published: any other path or method, and every
//	                             request under WithRoute404 / WithRoute404Window
//	422 CB.00031006              the job does not exist (prefix "422")
//	429 APIG.0308                gateway throttling, with Retry-After in seconds
//	500 CB.00060211              CodeArts' own throttling, "Too many requests"
//	500 CB.00060101              internal error
//	502 APIG.0201                backend unavailable
//	502 text/html                nginx's 502 page, no JSON (WithHTMLErrors)
//	503 APIG.0613                IAM unavailable (also the outage answer)
//	504 APIG.0201                backend timeout
//
// The other real codes (APIG.0306, APIG.0307, APIG.0310, CB.00060100,
// DEVCB.00031006) are constants for WithOutcome and ScriptOutcomes. Every
// response carries a unique X-Request-Id; JSON errors have the body
// {"error_code":"…","error_msg":"…"}, which WithStringBodies sends as a JSON
// string holding that object.
//
// GET /v3/{project_id}/jobs (ShowJobListByProjectId, `worker doctor`'s read)
// answers 200 with no jobs behind the same signature check (check.go).
//
// # Order of checks
//
// A request goes through: route 404 (WithRoute404, its windows: before
// anything else, as the gateway) → path and method (404 APIG.0101) →
// unauthorized window → authentication (when credentials or a token are
// configured) → latency → outage → admission rate limit → job id syntax →
// the job's script → the random answers, each drawn in this order until one
// hits: gateway throttling (429), backend throttling (500 CB.00060211), 5xx
// (WithErrorRate), HTML 502, 200 "fail", 200 with an error_code, HTML 200 →
// prefix outcomes → apply-then-hang → success. A JSON error answer from the
// outage onwards is then sent as a string body with probability
// WithStringBodies. Only requests to the recover route whose job id passes
// the syntax check are counted per job, whatever their answer.
//
// The simulator keeps the truth: Stats.Recovered, Recovered and
// RecoveredJobs count only recovers it applied, and Stats.Faults counts the
// answer faults it gave, so a test can tell "the worker said recovered" from
// "the job was recovered".
//
// # Concurrency
//
// The configuration is an immutable snapshot swapped atomically by Configure
// and the setters, so tests can flip faults mid-run. Counters are atomic and
// per-job records live in a sync.Map; the hot path takes no server-wide lock
// unless a random fault is configured (the seeded generator is shared).
//
// # Jobs and reads
//
// The server can hold a catalog of build jobs (WithJobs, SeedJobs, AddJobs):
// projects holding jobs, each enabled or disabled, with who disabled it,
// why and when. A recover answered 200 success enables a catalog job,
// unless Refuse made it one that answers success and stays disabled.
// Disable disables one. Three reads serve the catalog, signed like
// recovers and given the same gateway checks and answer faults (throttles,
// 5xx, HTML 502, string bodies, 200 with an error code, ScriptReads for a
// given read call):
//
//	GET /v3/{project_id}/jobs        ShowJobListByProjectId: {"jobs":[…],"total":N}, pages from 1
//	                                 (WithListShape(ShapeResult): {"result":{"job_list":…,"total":N}},
//	                                 pages from 0, as live answers are known to differ from the model)
//	GET /v1/job/list                 ListJob: {"result":{"job_list":[…],"total":N}}, every project, pages from 0
//	GET /v1/job/{job_id}/check/disable  ShowDisable: result.disabled 1 or 0, forbiddener, reson,
//	                                 forbidden_time (ms since the epoch); 422 DEVCB.00031006 off the catalog
//
// page_size is 1 to MaxPageSize (100), else 400 CB.00060200. A job outside
// the catalog is recovered as before: success, no state. Stats.Reads counts
// the reads by route.
//
// GET /stats answers the Stats snapshot as JSON (?jobs=0 leaves out the
// per-job map).
package codeartssim
