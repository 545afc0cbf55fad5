package worker

import "time"

// Outcome kinds reported to an Observer.
const (
	OutcomeRecovered    = "recovered"
	OutcomeDeadLettered = "dead_lettered"
	// OutcomeAlreadyEnabled: the job was read enabled before any recover
	// (Config.SkipEnabled) and the request ended without one.
	OutcomeAlreadyEnabled = "already_enabled"
	// OutcomeHandedBack: nak'd for a later delivery (retries of this
	// delivery used up, shutdown, or a failed dead-letter publish).
	OutcomeHandedBack = "handed_back"
	// OutcomeAckFailed: the work is done but the ack was not confirmed;
	// the request will be delivered again (at least once).
	OutcomeAckFailed = "ack_failed"
	// OutcomeLeaseLost: no heartbeat reached the server for longer than
	// AckWait, so another worker may own the request now; this worker
	// neither acks nor dead-letters it.
	OutcomeLeaseLost = "lease_lost"
)

// Outcome describes how one delivery of a request ended.
type Outcome struct {
	Kind      string
	Reason    string // dead-letter reason or hand-back cause
	JobID     string
	StreamSeq uint64
	Delivery  uint64
	Status    int
	RequestID string
	Attempts  int
	Duration  time.Duration
	// HeadersRefused, for a dead letter, counts the request's header
	// values left out of it because their names are not on the allow-list
	// (a credential a producer sent, among others).
	HeadersRefused int
}

// Call describes one API call.
type Call struct {
	JobID     string
	Status    int // 0 for a transport error or timeout
	ErrorCode string
	Class     string
	Duration  time.Duration
}

// Observer is told what the pool does; it must be safe for concurrent use
// and fast (it runs on the request path).
type Observer interface {
	Outcome(Outcome)
	Call(Call)
	Retry(cause string, wait time.Duration)
}

type nopObserver struct{}

func (nopObserver) Outcome(Outcome)             {}
func (nopObserver) Call(Call)                   {}
func (nopObserver) Retry(string, time.Duration) {}

// Observers fans out to several observers.
type Observers []Observer

// Outcome calls each observer.
func (os Observers) Outcome(o Outcome) {
	for _, x := range os {
		x.Outcome(o)
	}
}

// Call calls each observer.
func (os Observers) Call(c Call) {
	for _, x := range os {
		x.Call(c)
	}
}

// Retry calls each observer.
func (os Observers) Retry(cause string, wait time.Duration) {
	for _, x := range os {
		x.Retry(cause, wait)
	}
}
