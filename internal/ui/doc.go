// Package ui is the live status page a worker serves on a listener of its
// own (--ui-addr, loopback by default; the ops listener serves only health,
// readiness and metrics): one HTML page with its script and style embedded
// in the binary (no build step, nothing fetched from elsewhere, works
// offline), and the JSON endpoints it polls.
//
//	GET  /                  the page
//	GET  /api/status        the figures of `worker status --json`, plus this
//	                        process's: drain rate and ETA, recovered and
//	                        dead-lettered counts, API calls by status, current
//	                        rate and limit, breakers, pause and its reason
//	GET  /api/deadletters   dead letters grouped by reason and error code
//	GET  /api/campaigns/{name}/report[?format=csv]
//	                        a campaign's report with every job (as
//	                        `worker report --json --jobs` / `--csv`)
//	POST /api/replay        replay one group (only with Config.Actions and
//	                        Config.Token)
//
// Invariants it owns:
//   - Read-only unless Config.Actions and Config.Token: without both the
//     page has no replay control and POST /api/replay answers 403.
//   - A replay request carries the bearer token (401 otherwise, compared in
//     constant time) and comes from the page itself: JSON content type, the
//     X-Recover-Action header (which a cross-site form cannot send without a
//     CORS preflight this server never grants), and a same-origin
//     Origin/Sec-Fetch-Site (net/http's CrossOriginProtection).
//   - A replay names exactly one group the page shows (reason and error
//     code) and the last dead-letter sequence it saw; it moves at most
//     Config.ReplayMax (and never more than the group held), at
//     Config.ReplayRate a second, and starts at most once per
//     Config.ReplayEvery.
//   - Replays go through admin.Streams.Replay, the code path of
//     `worker dlq replay`: a dead letter leaves the dead-letter stream only
//     after its replay's publish ack. One replay runs at a time; Close
//     cancels it and waits.
//   - However many pages poll, the streams are read at most once per
//     Config.Refresh, and the dead letters rescanned only when they changed.
//   - Campaigns (Backend.Campaigns, admin.CampaignTracker) are read
//     incrementally: a refresh reads only the result events stored since
//     the last, memory is bounded (campaigns followed, job entries), and a
//     report download is read at most once per a few seconds, one at a time.
package ui
