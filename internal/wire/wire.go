// Package wire adapts the transport (queue) and the API client (codearts) to
// the seams the worker declares, so that neither imports the other and the
// worker imports neither. cmd/worker and the integration tests wire through
// it.
package wire

import (
	"context"
	"net/url"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Source makes a queue.Consumer a worker.Source.
type Source struct{ C *queue.Consumer }

// Fetch pulls at most n messages and hands each to deliver.
func (s Source) Fetch(ctx context.Context, n int, deliver func(worker.Delivery)) error {
	b, err := s.C.Fetch(ctx, n)
	if err != nil {
		return err
	}
	for m := range b.Messages() {
		deliver(m)
	}
	return b.Err()
}

// Connected reports whether NATS is reachable.
func (s Source) Connected() bool { return s.C.Connected() }

// Flush returns once the server has received everything sent so far, for
// the pool's lease check: a heartbeat counts only once delivered.
func (s Source) Flush(ctx context.Context) error { return s.C.Flush(ctx) }

// Stranded makes queue.Advisories a worker.StrandedSource.
type Stranded struct{ A *queue.Advisories }

// NextStranded waits for the next request that reached MaxDeliver.
func (s Stranded) NextStranded(ctx context.Context) (worker.StrandedMsg, error) {
	m, err := s.A.Next(ctx)
	if err != nil {
		return worker.StrandedMsg{}, err
	}
	return worker.StrandedMsg{
		Subject: m.Subject, StreamSeq: m.Seq, Header: m.Header, Body: m.Data, Stored: m.Time,
		Deliveries: m.Deliveries, Gone: m.Gone, Delete: m.Delete, Done: m.Done, Retry: m.Retry,
	}, nil
}

// Requeuer makes a queue.Conn a worker.Requeuer.
type Requeuer struct{ C *queue.Conn }

// Requeue publishes the request again and waits for the server's ack; a
// duplicate (the same hand-back, repeated) is success.
func (r Requeuer) Requeue(ctx context.Context, subject, msgID string, header map[string][]string, body []byte) error {
	_, err := r.C.Publish(ctx, subject, msgID, nats.Header(header), body)
	return err
}

// States makes a codearts.Client a worker.StateReader (ShowDisable).
type States struct{ C *codearts.Client }

// Disabled reads whether the request's job is disabled, in its region.
func (s States) Disabled(ctx context.Context, r worker.Request) (bool, string, error) {
	st, err := s.C.JobState(ctx, r.JobID, r.Region)
	return st.Disabled, "", err
}

// Recoverer makes a codearts.Client a worker.Recoverer. The call's span
// (the pool's, in ctx) gets server.address and server.port of the region's
// endpoint: only the client knows where the call goes.
func Recoverer(c *codearts.Client) worker.Recoverer {
	return worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(serverAttrs(c.Endpoint(r.Region))...)
		}
		return c.Recover(ctx, r.JobID, r.Region)
	})
}

// serverAttrs are server.address and server.port of an endpoint URL, the
// port being the scheme's default when the URL names none.
func serverAttrs(endpoint string) []attribute.KeyValue {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = 443
		if u.Scheme == "http" {
			port = 80
		}
	}
	return []attribute.KeyValue{semconv.ServerAddress(u.Hostname()), semconv.ServerPort(port)}
}
