package worker_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A dead letter keeps only the allow-listed headers of its request (trace
// context, CloudEvents, content type, message id), so a credential a
// producer sent is not stored for 14 days nor sent again by a replay; the
// others are counted (HeadersRefused, the metric
// codearts_recover_dead_letter_headers_refused_total).
func TestDeadLetterHeaderAllowList(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	kept := nats.Header{
		"traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"tracestate":   {"vendor=value"},
		"ce-id":        {"event-1"},
		"Ce-Source":    {"/automation"},
		"Content-Type": {"application/json"},
		"Nats-Msg-Id":  {"poison-1"},
	}
	refused := nats.Header{
		"Authorization": {"Bearer secret-never-recorded"},
		"X-Api-Key":     {"secret-key-1", "secret-key-2"},
		"Cookie":        {"session=secret-cookie"},
		"Cer-Trick":     {"not a CloudEvents attribute"},
	}
	h := nats.Header{}
	for _, src := range []nats.Header{kept, refused} {
		for k, vs := range src {
			h[k] = vs
		}
	}
	publishRequest(t, env, h, []byte(`{"job_id":"not-an-id"}`))

	rec := testenv.NewRecorder()
	env.Start(oversizePool(t, env, rec, nil, nil, 0))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "the poison dead-lettered")

	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, map[string][]string(kept), dls[0].Original.Headers, "exactly the allow-listed headers")
	require.Zero(t, dls[0].Original.HeadersDropped, "none of the allow-listed ones left out")
	data, err := dls[0].Marshal()
	require.NoError(t, err)
	require.NotContains(t, string(data), "secret")
	var refusedValues int
	for _, o := range rec.Outcomes() {
		if o.Kind == worker.OutcomeDeadLettered {
			refusedValues += o.HeadersRefused
		}
	}
	require.Equal(t, 5, refusedValues, "Authorization, two X-Api-Key, Cookie, Cer-Trick")
}
