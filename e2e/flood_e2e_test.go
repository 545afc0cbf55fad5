//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// Scenario 7: 10,000 hostile messages mixed with 1,000 good requests. Every
// bad one is dead-lettered invalid_request without a single API call for
// it, every good one is recovered, the worker does not panic and its memory
// stays bounded.
func TestBadInputFlood(t *testing.T) {
	r := newRand(t)
	s := newSystem(t, "7_bad_input_flood", sysOptions{})
	s.worker("w1", "--concurrency", "64")
	items := badItems(r, 10000)
	for range 1000 {
		items = append(items, goodItem(r, jobID(r, "ok"), outcomeRecovered))
	}
	r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	s.enqueue(items)
	s.finish(finishOptions{
		drainTimeout: 3 * time.Minute,
		oracle:       oracleOptions{strictAPICalls: true},
		maxRSS:       128 << 20,
	})
}
