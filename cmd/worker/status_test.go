package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// status figures are the server's: 10 requests, 3 delivered and not acked
// (one of them redelivered), 9 dead letters.
func TestStatusMatchesTheStreams(t *testing.T) {
	// A long AckWait keeps the unacked deliveries in flight for the test.
	env, nats := toolEnv(t, testenv.Options{Queue: queue.Config{AckWait: 10 * time.Minute}})
	ctx := context.Background()
	for i := range 10 {
		id := seqJobID("5", i)
		env.Publish(id, id)
	}
	cons, err := env.Conn.Consumer(ctx)
	require.NoError(t, err)
	fetch := func(n int) []*queue.Message {
		b, err := cons.Fetch(ctx, n)
		require.NoError(t, err)
		var got []*queue.Message
		for m := range b.Messages() {
			got = append(got, m)
		}
		require.NoError(t, b.Err())
		require.Len(t, got, n)
		return got
	}
	first := fetch(3)
	// The server's nak advisory says the nak was taken; a pull after it is
	// served the nak'd request first.
	cfg := env.Conn.Config()
	naked, err := env.Conn.NC.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED." + cfg.Stream + "." + cfg.Consumer)
	require.NoError(t, err)
	require.NoError(t, env.Conn.NC.Flush())
	require.NoError(t, first[0].Nak(0))
	_, err = naked.NextMsg(10 * time.Second)
	require.NoError(t, err)
	require.NoError(t, naked.Unsubscribe())
	again := fetch(1)
	require.Equal(t, first[0].StreamSeq(), again[0].StreamSeq(), "the nak'd request comes back first")
	publishFixture(t, env)

	r := cli(t, "", withFlags([]string{"status", "--json"}, nats)...)
	require.Zero(t, r.code, r.err)
	var got admin.Status
	require.NoError(t, json.Unmarshal([]byte(r.out), &got), r.out)

	req, err := env.Conn.StreamInfo(ctx, cfg.Stream)
	require.NoError(t, err)
	dlq, err := env.Conn.StreamInfo(ctx, cfg.DLQStream)
	require.NoError(t, err)
	ci, err := env.Conn.ConsumerInfo(ctx, cfg.Stream, cfg.Consumer)
	require.NoError(t, err)
	require.Equal(t, admin.Status{
		Stream: admin.StreamStatus{
			Name: cfg.Stream, Subjects: []string{cfg.Subject}, Messages: 10, Bytes: req.State.Bytes,
			FirstSeq: 1, LastSeq: 10,
		},
		Consumer: &admin.ConsumerStatus{Name: cfg.Consumer, Pending: 7, InFlight: 3, Redelivered: 1, WaitingPulls: 0},
		DLQ: admin.DLQStatus{Name: cfg.DLQStream, Messages: 9, Bytes: dlq.State.Bytes, ByReason: map[string]int{
			"client_error": 4, "invalid_request": 1, "retries_exhausted": 2, "max_deliveries": 1, "unreadable": 1,
		}},
		Results: &admin.ResultsStatus{Name: cfg.ResultStream},
	}, got)
	require.Equal(t, ci.NumPending, got.Consumer.Pending)
	require.Equal(t, ci.NumAckPending, got.Consumer.InFlight)
	require.Equal(t, ci.NumRedelivered, got.Consumer.Redelivered)

	r = cli(t, "", withFlags([]string{"status"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "status.golden", r.out)

	r = cli(t, "", withFlags([]string{"status", "-o", "yaml"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "status.yaml.golden", r.out)

	// Before any worker started, the consumer is absent; a missing result
	// stream is left out.
	r = cli(t, "", withFlags([]string{"status", "--json", "--consumer", "not-started", "--result-stream", "NONE"}, nats)...)
	require.Zero(t, r.code, r.err)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(r.out), &raw))
	require.Equal(t, "null", string(raw["consumer"]))
	require.NotContains(t, raw, "results")
	r = cli(t, "", withFlags([]string{"status", "--consumer", "not-started", "--result-stream", "NONE"}, nats)...)
	require.Zero(t, r.code, r.err)
	require.Contains(t, r.out, "consumer absent (no worker has started yet)\n")
}
