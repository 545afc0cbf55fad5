package admin

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A replay republishes the original byte for byte: body, the headers the
// dead letter kept, each in its own case (a "Traceparent" stays as it was,
// no second one is added), plus only the replay's own (Recover-Replay-Of,
// Nats-Msg-Id) and the expected stream; the dead letter is removed once the
// request stream has it.
func TestReplayPublishesTheOriginal(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	body := fmt.Sprintf(` {"job_id":"%032d", "note":"kept as sent"} `, 1)
	d := worker.DeadLetter{
		JobID: fmt.Sprintf("%032d", 1), Reason: worker.ReasonClientError, StatusCode: 404, ErrorCode: "CB.1",
		Original: worker.NewOriginal(queue.DefaultSubject, 1, map[string][]string{
			"Traceparent": {tp}, "Content-Type": {"application/json"}, "Nats-Msg-Id": {"first-publish"},
		}, []byte(body)),
	}
	data, err := d.Marshal()
	require.NoError(t, err)
	_, err = env.Conn.Publish(ctx, env.Conn.Config().DLQSubject, "dl-1", nil, data)
	require.NoError(t, err)

	dlq, err := env.Conn.Stream(ctx, env.Conn.Config().DLQStream)
	require.NoError(t, err)
	letter, err := dlq.GetMsg(ctx, 1)
	require.NoError(t, err)
	sum, err := Replay(ctx, env.Conn, dlq, []uint64{1}, ReplayConfig{})
	require.NoError(t, err)
	require.Equal(t, ReplaySummary{Matched: 1, Replayed: 1}, sum)
	require.Zero(t, env.DLQCount(), "removed after the replay's ack")

	reqs, err := env.Conn.Stream(ctx, env.Conn.Config().Stream)
	require.NoError(t, err)
	m, err := reqs.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, body, string(m.Data))
	require.Equal(t, map[string][]string{
		"Traceparent":          {tp},
		"Content-Type":         {"application/json"},
		ReplayOfHeader:         {"1"},
		"Nats-Msg-Id":          {ReplayMsgID(1, letter.Time)},
		"Nats-Expected-Stream": {env.Conn.Config().Stream},
	}, m.Header)
}
