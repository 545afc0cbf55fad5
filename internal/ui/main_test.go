package ui

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { // nats.go v1.55's async publisher parks this on a nil channel when the
	// connection closes right after its first async publish: the library's.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
