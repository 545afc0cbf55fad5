// Command bench is the scenario benchmark of codearts-recover-worker. It
// drives the product binary only: every scenario drains N recover requests
// with `worker run` processes (one or a fleet of them), through a real
// nats-server and the real SDK, against the simulated CodeArts API, and
// prints one row per scenario: wall time against the ideal the API allows,
// the share of 429 answers, dead letters, worker CPU per request, peak RSS
// and whether the scenario met the targets of SPEC.md.
//
// It is its own Go module (as deploy/helm/test is), so the benchmark and its
// comparison peer stay out of the worker's go.mod and out of `go test ./...`
// at the root; go.mod replaces the root module with this checkout.
//
// Processes, so that each figure belongs to one of them:
//
//   - this one (the orchestrator): an embedded nats-server, the enqueue, the
//     clock, the fleet's changes (scale, rolling restart, SIGKILL) and the
//     oracle (result and dead-letter streams against the enqueued ids);
//   - the simulator: this binary re-executed as "_sim", serving codeartssim
//     on 127.0.0.1 over HTTPS (a certificate made for the run, which the
//     workers trust through SSL_CERT_FILE) with a control endpoint for the
//     outage. It is the API, not the worker;
//   - the workers: `worker run` of -worker-bin (ready once /readyz answers
//     200, stopped with SIGTERM), or, as the comparison, the naive peer
//     (package naive) as this binary re-executed as "_naive".
//
// Worker CPU is the workers' own (user + system), from /proc at the drain's
// start to its end, or to the exit of a worker stopped during it; peak RSS is
// the highest VmHWM of one worker process.
//
// Usage (from this directory; `make bench` builds the worker and runs it):
//
//	go run . -worker-bin ../bin/worker                        # every scenario, HTTPS (h2)
//	go run . -worker-bin ../bin/worker -scenarios latency,zero -scale 0.2 -repeat 1
//	go run . -worker-bin ../bin/worker -naive zero,latency -repeat 3
//	go run . -worker-bin ../bin/worker -scenarios latency -repeat 3 \
//	    -variant 'gogc100=../bin/worker GOGC=100'             # A/B: another binary or environment, interleaved
//	go run . -worker-bin ../bin/worker -json > bench.json
package main
