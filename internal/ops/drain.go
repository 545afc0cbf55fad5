package ops

import (
	"sync/atomic"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// DrainTally counts what becomes of requests once shutdown has begun, for
// the one shutdown log line: how many finished during the drain and how many
// were handed back to the stream. It implements worker.Observer.
type DrainTally struct {
	begun      atomic.Bool
	finished   atomic.Int64
	handedBack atomic.Int64
}

var _ worker.Observer = (*DrainTally)(nil)

// Begin marks the start of shutdown; outcomes before it are not counted.
func (d *DrainTally) Begin() { d.begun.Store(true) }

// Outcome counts a delivery that ended after Begin.
func (d *DrainTally) Outcome(o worker.Outcome) {
	if !d.begun.Load() {
		return
	}
	switch o.Kind {
	case worker.OutcomeRecovered, worker.OutcomeDeadLettered, worker.OutcomeAlreadyEnabled:
		d.finished.Add(1)
	default:
		// Handed back, ack not confirmed, lease lost: the request comes
		// back to the stream for another worker.
		d.handedBack.Add(1)
	}
}

// Call does nothing.
func (d *DrainTally) Call(worker.Call) {}

// Retry does nothing.
func (d *DrainTally) Retry(string, time.Duration) {}

// Counts returns the requests finished (recovered or dead-lettered) and
// handed back since Begin.
func (d *DrainTally) Counts() (finished, handedBack int64) {
	return d.finished.Load(), d.handedBack.Load()
}
