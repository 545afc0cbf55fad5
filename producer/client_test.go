package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// bundle is what a test's client publishes to.
type bundle struct {
	nc    *nats.Conn
	conn  *queue.Conn // the worker's view: its streams ensured
	spans *tracetest.SpanRecorder
}

// setup starts NATS with the worker's streams and returns a client on it
// (tracing recorded) and its collaborators.
func setup(t *testing.T, cfg producer.Config) (*producer.Client, *bundle) {
	t.Helper()
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(ns.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, queue.Config{URL: ns.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(time.Second) })
	require.NoError(t, conn.Ensure(ctx))
	nc, err := nats.Connect(ns.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)

	b := &bundle{nc: nc, conn: conn, spans: tracetest.NewSpanRecorder()}
	if cfg.TracerProvider == nil {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b.spans))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		cfg.TracerProvider = tp
	}
	c, err := producer.New(nc, cfg)
	require.NoError(t, err)
	return c, b
}

// stored returns the message stored at seq in the request stream.
func (b *bundle) stored(t *testing.T, seq uint64) queue.StoredMsg {
	t.Helper()
	s, err := b.conn.Stream(context.Background(), b.conn.Config().Stream)
	require.NoError(t, err)
	m, err := s.GetMsg(context.Background(), seq)
	require.NoError(t, err)
	return m
}

// pending is the number of requests in the request stream.
func (b *bundle) pending(t *testing.T) uint64 {
	t.Helper()
	s, err := b.conn.Stream(context.Background(), b.conn.Config().Stream)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// Enqueue stores the canonical body with the job id as Nats-Msg-Id, says
// duplicate for a repeat, and refuses an invalid request naming it.
func TestEnqueue(t *testing.T) {
	c, b := setup(t, producer.Config{Stream: queue.DefaultStream})
	ctx := context.Background()
	req := producer.Request{JobID: goodID, Reason: "outage", Campaign: "c1"}

	res, err := c.Enqueue(ctx, req)
	require.NoError(t, err)
	require.Equal(t, producer.Result{JobID: goodID, MsgID: goodID, Seq: 1}, res)
	m := b.stored(t, 1)
	require.Equal(t, `{"job_id":"`+goodID+`","reason":"outage","campaign":"c1"}`, string(m.Data))
	require.Equal(t, goodID, nats.Header(m.Header).Get("Nats-Msg-Id"))
	require.Equal(t, queue.DefaultSubject, m.Subject)

	again, err := c.Enqueue(ctx, req)
	require.NoError(t, err)
	require.Equal(t, producer.Result{JobID: goodID, MsgID: goodID, Seq: 1, Duplicate: true}, again)

	_, err = c.Enqueue(ctx, producer.Request{JobID: "../../etc/passwd"})
	require.EqualError(t, err, `invalid request: job_id "../../etc/passwd" is not 32 ASCII letters or digits`)
	require.EqualValues(t, 1, b.pending(t), "nothing more stored")
}

// A client bound to a stream refuses to publish to a subject another
// stream (or none) takes: the request is not stored anywhere else.
func TestEnqueueWrongStream(t *testing.T) {
	c, b := setup(t, producer.Config{Stream: "ELSEWHERE"})
	_, err := c.Enqueue(context.Background(), producer.Request{JobID: goodID})
	require.ErrorContains(t, err, "expected stream does not match")
	require.Zero(t, b.pending(t))
}

// The producer span of Enqueue is a child of the caller's span and is what
// the traceparent header names; a batch's are roots linked to the caller's
// span. With tracing off and no span, no header is added.
func TestEnqueueTrace(t *testing.T) {
	c, b := setup(t, producer.Config{})
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b.spans)).Tracer("test")
	ctx, parent := tracer.Start(context.Background(), "event")
	res, err := c.Enqueue(ctx, producer.Request{JobID: goodID})
	require.NoError(t, err)
	parent.End()

	spans := b.spans.Ended()
	require.Len(t, spans, 2)
	send := spans[0]
	require.Equal(t, "send "+queue.DefaultSubject, send.Name())
	require.Equal(t, trace.SpanKindProducer, send.SpanKind())
	require.Equal(t, parent.SpanContext().SpanID(), send.Parent().SpanID(), "a child of the caller's span")
	require.Equal(t, map[attribute.Key]string{
		"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "send",
		"messaging.destination.name": queue.DefaultSubject, "messaging.message.id": goodID,
		"messaging.message.body.size": strconv.Itoa(len(`{"job_id":"` + goodID + `"}`)),
		"codearts_recover.job_id":     goodID, "codearts_recover.stream_seq": "1", "codearts_recover.duplicate": "false",
	}, spanAttrs(send))
	sc := send.SpanContext()
	require.Equal(t, []string{fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())}, b.stored(t, res.Seq).Header["traceparent"])

	// A batch: each request the root of its own trace, linked to ctx's.
	other := "0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b"
	_, err = c.EnqueueMany(ctx, []producer.Request{{JobID: other}}, producer.BatchConfig{})
	require.NoError(t, err)
	spans = b.spans.Ended()
	require.Len(t, spans, 3)
	root := spans[2]
	require.False(t, root.Parent().IsValid(), "the root of its trace")
	require.NotEqual(t, parent.SpanContext().TraceID(), root.SpanContext().TraceID())
	require.Len(t, root.Links(), 1)
	require.Equal(t, parent.SpanContext().SpanID(), root.Links()[0].SpanContext.SpanID())
	require.Equal(t, other, spanAttrs(root)["codearts_recover.job_id"])

	// Tracing off: the no-op global provider, no span in ctx.
	off, err := producer.New(b.nc, producer.Config{})
	require.NoError(t, err)
	third := "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
	res, err = off.Enqueue(context.Background(), producer.Request{JobID: third})
	require.NoError(t, err)
	require.NotContains(t, b.stored(t, res.Seq).Header, "traceparent")
}

// EnqueueMany: every request's result at its index, progress in order,
// invalid ones not sent, and a rerun counts duplicates from the acks.
func TestEnqueueMany(t *testing.T) {
	c, b := setup(t, producer.Config{})
	const n = 500
	reqs := make([]producer.Request, n)
	for i := range reqs {
		reqs[i] = producer.Request{JobID: fmt.Sprintf("%032d", i)}
	}
	reqs[7].JobID = "bad"
	var refs []uint64
	results, err := c.EnqueueMany(context.Background(), reqs, producer.BatchConfig{
		Window:   8,
		OnResult: func(r producer.BatchResult) { refs = append(refs, r.Ref) },
	})
	require.NoError(t, err)
	require.Len(t, results, n)
	require.Len(t, refs, n-1)
	for i, ref := range refs {
		require.Less(t, ref, uint64(n))
		if i > 0 {
			require.Greater(t, ref, refs[i-1], "results in publish order")
		}
	}
	for i, r := range results {
		require.Equal(t, uint64(i), r.Ref)
		require.Equal(t, reqs[i].JobID, r.JobID)
		if i == 7 {
			_, ok := errors.AsType[*producer.InvalidError](r.Err)
			require.True(t, ok, "%v", r.Err)
			continue
		}
		require.NoError(t, r.Err)
		require.False(t, r.Duplicate)
		require.Equal(t, reqs[i].JobID, string(b.stored(t, r.Seq).Data[len(`{"job_id":"`):][:32]))
	}
	require.EqualValues(t, n-1, b.pending(t))

	again, err := c.EnqueueMany(context.Background(), reqs, producer.BatchConfig{Window: 8})
	require.NoError(t, err)
	for i, r := range again {
		if i != 7 {
			require.True(t, r.Duplicate, "request %d", i)
			require.Equal(t, results[i].Seq, r.Seq, "the sequence stored first")
		}
	}
	require.EqualValues(t, n-1, b.pending(t))
}

// A batch stopped by its context still learns the fate of what it sent;
// the rest is ErrNotSent.
func TestEnqueueManyCancelled(t *testing.T) {
	c, b := setup(t, producer.Config{})
	reqs := make([]producer.Request, 100)
	for i := range reqs {
		reqs[i] = producer.Request{JobID: fmt.Sprintf("%032d", i)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results, err := c.EnqueueMany(ctx, reqs, producer.BatchConfig{
		Window: 4,
		OnResult: func(r producer.BatchResult) {
			if r.Ref == 9 {
				cancel()
			}
		},
	})
	require.ErrorIs(t, err, context.Canceled)
	stored := 0
	for i, r := range results {
		if r.Err == nil {
			require.Equal(t, stored, i, "the sent ones first")
			stored++
			continue
		}
		require.ErrorIs(t, r.Err, producer.ErrNotSent)
	}
	require.GreaterOrEqual(t, stored, 10)
	require.EqualValues(t, stored, b.pending(t), "each one said stored is")
}

// At most Window messages await their ack: while OnResult holds the first
// result, no further message is sent (Publish gives up with its context).
// Publish sends a raw message as it is.
func TestBatchWindow(t *testing.T) {
	c, b := setup(t, producer.Config{})
	const window = 4
	gate, entered := make(chan struct{}), make(chan struct{})
	var got []producer.BatchResult
	batch, err := c.NewBatch(producer.BatchConfig{Window: window, OnResult: func(r producer.BatchResult) {
		if r.Ref == 0 {
			close(entered)
			<-gate
		}
		got = append(got, r)
	}})
	require.NoError(t, err)
	raw := func(i int) producer.Message {
		return producer.Message{
			MsgID: fmt.Sprint("raw-", i), Data: fmt.Appendf(nil, " %032d ", i),
			Header: nats.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "X-Other": {"a", "b"}},
		}
	}
	ctx := context.Background()
	for i := range window {
		require.NoError(t, batch.Publish(ctx, raw(i), uint64(i)))
	}
	<-entered
	done, cancel := context.WithCancel(ctx)
	cancel()
	for range 20 {
		require.ErrorIs(t, batch.Publish(done, raw(window), window), context.Canceled, "the window is full")
	}
	close(gate)
	require.NoError(t, batch.Publish(ctx, raw(window), window))
	st := batch.Close()
	require.Equal(t, producer.Stats{Stored: window + 1}, st)
	require.Len(t, got, window+1)

	m := b.stored(t, 1)
	require.Equal(t, " "+fmt.Sprintf("%032d", 0)+" ", string(m.Data), "the body as it was")
	require.Equal(t, []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, m.Header["Traceparent"])
	require.NotContains(t, m.Header, "traceparent", "no span of its own")
	require.Equal(t, []string{"a", "b"}, m.Header["X-Other"])
	require.Equal(t, "raw-0", nats.Header(m.Header).Get("Nats-Msg-Id"))
	require.Empty(t, b.spans.Ended())
	require.ErrorContains(t, batch.Publish(ctx, raw(9), 9), "batch closed")
}

// New refuses a configuration that cannot work, naming the field.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		give    producer.Config
		wantErr string
	}{
		{name: "defaults", give: producer.Config{}},
		{name: "wildcard subject", give: producer.Config{Subject: "codearts.build.*"}, wantErr: `Subject "codearts.build.*"`},
		{name: "stream with a dot", give: producer.Config{Stream: "CODEARTS.RECOVER"}, wantErr: `Stream "CODEARTS.RECOVER"`},
		{name: "negative body limit", give: producer.Config{Encode: producer.EncodeOptions{MaxBytes: -1}}, wantErr: "Encode.MaxBytes -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	_, err := producer.New(nil, producer.Config{})
	require.ErrorContains(t, err, "no NATS connection")
}
