package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// BenchmarkEnqueue measures `worker enqueue --file` end to end (read,
// validate, publish with a window, await every ack) against an embedded
// nats-server with file storage. Each iteration publishes the same 10,000
// ids under a fresh dedup key, so every request is newly stored.
func BenchmarkEnqueue(b *testing.B) {
	const n = 10000
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.Config{URL: ns.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(time.Second) }()
	if err := conn.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = seqJobID("b", i)
	}
	path := filepath.Join(b.TempDir(), "jobs.txt")
	if err := os.WriteFile(path, []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	iter := 0
	for b.Loop() {
		iter++
		code := Main([]string{"enqueue", "--nats-url", ns.URL(), "--file", path, "--quiet",
			"--dedup-key", fmt.Sprintf("{{.JobID}}-%d", iter)}, strings.NewReader(""), io.Discard, io.Discard)
		if code != 0 {
			b.Fatalf("enqueue exit %d", code)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
