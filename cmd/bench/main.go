// Command bench is the scenario benchmark of codearts-recover-worker: it
// drains N recover requests with the real worker, through a real
// nats-server (embedded in this process) and the real SDK, against the
// simulated API on loopback, and prints one table row per scenario: wall
// time against the ideal the API allows, worker CPU per request, peak RSS,
// the API's answers and how many requests were lost.
//
// Three processes take part, so that each figure belongs to one of them:
//
//   - this one (the orchestrator): the embedded nats-server, the enqueue, the
//     clock and the oracle (result stream + dead-letter stream against the
//     enqueued ids);
//   - the simulator: this binary re-executed as "_sim", serving codeartssim
//     on 127.0.0.1 (HTTPS with -tls) with a control endpoint for the outage;
//   - the worker: by default the product binary's `worker run` (started,
//     waited for on /readyz, stopped with SIGTERM); with -worker builtin this
//     binary re-executed as "_worker", wired as run.go wires the pool, which
//     adds its API and delivery timings and -profile; and with -naive the
//     naive peer (package naive). Worker CPU is that process's own, read
//     from /proc or getrusage between the start and the end of the drain;
//     peak RSS is its VmHWM. The SIGKILL scenario kills it and starts
//     another at once.
//
// Usage (from the module root):
//
//	go run ./cmd/bench                          # every scenario at full size (~2 min)
//	go run ./cmd/bench -scenarios zero,latency -scale 0.2
//	go run ./cmd/bench -naive zero -tls h1      # side by side with the naive peer, over HTTPS
//	go run ./cmd/bench -json > bench.json
//	go run ./cmd/bench -worker builtin -scenarios zero -profile prof/   # CPU and alloc profiles
package main

import (
	"os"
)

// Roles of a re-executed child; the leading underscore keeps them apart
// from anything a user would type.
const (
	roleSim    = "_sim"
	roleWorker = "_worker"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case roleSim:
			os.Exit(simMain(os.Args[2:]))
		case roleWorker:
			os.Exit(workerMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain(os.Args[1:]))
}
