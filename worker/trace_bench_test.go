package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// memSource delivers messages from memory as fast as the pool takes them;
// the last ack closes done. Once it has nothing left, a pull waits for
// done or ctx, as a real pull waits for messages that do not come.
type memSource struct {
	n       int64
	next    atomic.Int64
	acked   atomic.Int64
	naks    atomic.Int64
	done    chan struct{}
	once    sync.Once
	headers map[string][]string
	body    []byte
}

func (s *memSource) Fetch(ctx context.Context, n int, deliver func(worker.Delivery)) error {
	for range n {
		seq := s.next.Add(1)
		if seq > s.n {
			select {
			case <-ctx.Done():
			case <-s.done:
			}
			return nil
		}
		deliver(&memDelivery{src: s, seq: uint64(seq)})
	}
	return nil
}

type memDelivery struct {
	src *memSource
	seq uint64
}

var benchStored = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func (d *memDelivery) Body() []byte                { return d.src.body }
func (d *memDelivery) Header() map[string][]string { return d.src.headers }
func (d *memDelivery) Subject() string             { return "codearts.build.recover" }
func (d *memDelivery) StreamSeq() uint64           { return d.seq }
func (d *memDelivery) NumDelivered() uint64        { return 1 }
func (d *memDelivery) Timestamp() time.Time        { return benchStored }
func (d *memDelivery) Nak(time.Duration) error     { d.src.naks.Add(1); return nil }
func (d *memDelivery) InProgress() error           { return nil }
func (d *memDelivery) Ack(context.Context) error {
	if d.src.acked.Add(1) == d.src.n {
		d.src.once.Do(func() { close(d.src.done) })
	}
	return nil
}

type nopSink struct{}

func (nopSink) DeadLetter(context.Context, string, []byte) error { return nil }
func (nopSink) Result(context.Context, string, []byte) error     { return nil }

// benchPool runs b.N requests (b.N, not b.Loop: the requests flow through
// the pool's own goroutines, one Run for all of them) through a pool whose source, API and sinks
// are in memory: what remains is the pool's own cost per request (decode,
// gate, classify, result event, ack, and tracing when configured).
func benchPool(b *testing.B, cfg worker.Config, headers map[string][]string) {
	b.Helper()
	b.ReportAllocs()
	src := &memSource{n: int64(b.N), done: make(chan struct{}), headers: headers, body: []byte(benchJobID)}
	rec := worker.RecoverFunc(func(context.Context, worker.Request) (string, error) {
		return "d9ff73f5914e9b11000000000000001e", nil
	})
	cfg.Concurrency = 8
	cfg.Results = nopSink{}
	cfg.Name = "bench"
	p, err := worker.New(cfg, src, rec, nopSink{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- p.Run(ctx) }()
	<-src.done
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPool measures the pool's cost per recovered request with and
// without tracing: off (Config.Tracer nil), off with a producer's
// traceparent to read, on with every span sampled (batched to a no-op
// exporter, as a real exporter is fed), and on with nothing sampled.
func BenchmarkPool(b *testing.B) {
	traced := map[string][]string{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	provider := func(b *testing.B, s sdktrace.Sampler) trace.TracerProvider {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return tp
	}
	b.Run("tracing_off", func(b *testing.B) { benchPool(b, worker.Config{}, nil) })
	b.Run("tracing_off_traceparent", func(b *testing.B) { benchPool(b, worker.Config{}, traced) })
	b.Run("tracing_on_sampled", func(b *testing.B) {
		benchPool(b, worker.Config{Tracer: provider(b, sdktrace.AlwaysSample())}, nil)
	})
	b.Run("tracing_on_sampled_traceparent", func(b *testing.B) {
		benchPool(b, worker.Config{Tracer: provider(b, sdktrace.AlwaysSample())}, traced)
	})
	b.Run("tracing_on_unsampled", func(b *testing.B) {
		benchPool(b, worker.Config{Tracer: provider(b, sdktrace.NeverSample())}, nil)
	})
}
