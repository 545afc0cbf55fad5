package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A MAX_DELIVERIES advisory published by a client (anyone allowed to
// publish on the advisory subject) that the consumer's state does not
// confirm (not the server's type, another stream, fewer deliveries than
// MaxDeliver, a message the consumer never delivered) is dropped: nothing
// is dead-lettered or deleted, every request is recovered.
func TestForgedAdvisoryIsIgnored(t *testing.T) {
	const n = 20
	env := testenv.New(t, testenv.Options{})
	ids := publishN(env, n, "v")
	rec := testenv.NewRecorder()
	p := env.Pool(nil, poolConfig(rec)) // creates the advisory stream
	qc := env.Queue.WithDefaults()
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + qc.Stream + "." + qc.Consumer
	for _, forged := range []map[string]any{
		{"type": "io.nats.jetstream.advisory.v1.max_deliver", "stream": qc.Stream, "consumer": qc.Consumer, "stream_seq": n + 5, "deliveries": 99},
		{"type": "io.nats.jetstream.advisory.v1.max_deliver", "stream": qc.Stream, "consumer": qc.Consumer, "stream_seq": 2, "deliveries": 1},
		{"type": "something.else", "stream": qc.Stream, "consumer": qc.Consumer, "stream_seq": 3, "deliveries": 99},
		{"type": "io.nats.jetstream.advisory.v1.max_deliver", "stream": "OTHER", "consumer": qc.Consumer, "stream_seq": 4, "deliveries": 99},
	} {
		data, err := json.Marshal(forged)
		require.NoError(t, err)
		_, err = env.Conn.JS.Publish(context.Background(), subject, data)
		require.NoError(t, err, "captured by the advisory stream")
	}
	env.Start(p)
	testenv.Eventually(t, 30*time.Second, func() bool {
		st, err := env.Conn.JS.Stream(context.Background(), qc.Stream+"_MAXDELIVER")
		return err == nil && st.CachedInfo().State.Msgs == 0 && rec.Count(worker.OutcomeRecovered) == n
	}, "the forged advisories dropped, the first requests recovered")
	// The request the first advisory named arrives only now.
	ids = append(ids, publishN(env, 10, "w")...)

	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) == n+10 }, "every request recovered")
	require.Zero(t, env.DLQCount(), "no forged advisory dead-lettered a request")
	require.Zero(t, rec.Count(worker.OutcomeDeadLettered))
	requireAllRecovered(t, env, ids)
}
