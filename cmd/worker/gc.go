package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the worker's GOGC when the environment sets none.
// The pool's garbage is short-lived (one SDK request, one NATS exchange per
// message) over a live heap of a few MiB, so at the runtime's default the
// heap goal sits at its floor (4 MiB × GOGC/100) and the collector runs
// often for little; at 400 it runs about a quarter as often. What that buys
// and costs (CPU per request, peak RSS) is measured in docs/performance.md.
// GOMEMLIMIT (the Helm chart sets it from the memory limit) still bounds the
// heap when it must.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent unless GOGC is set: an operator's GOGC
// always wins.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
}
