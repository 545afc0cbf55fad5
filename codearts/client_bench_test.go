package codearts

import (
	"context"
	"testing"
)

// BenchmarkRecover measures one signed Recover against the in-process
// simulator with zero latency: client and simulator cost together.
func BenchmarkRecover(b *testing.B) {
	c, bundle := setup(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := c.Recover(ctx, jobA, ""); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if got := bundle.sim.Recovered(jobA); got != n {
		b.Fatalf("simulator recovered %d, want %d", got, n)
	}
}
