package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

const mib = 1 << 20

// randomBytes is n bytes of seeded noise (not valid UTF-8).
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// repeatTo repeats unit up to n bytes.
func repeatTo(unit string, n int) []byte {
	return bytes.Repeat([]byte(unit), n/len(unit)+1)[:n]
}

func controlBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 0x20)
	}
	return b
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// requireRecordOf checks a marshalled dead letter against the body it was
// built from: within MaxDeadLetterSize, and either the body verbatim
// (replayable) or its size, SHA-256 and a valid UTF-8 prefix.
func requireRecordOf(t *testing.T, data, body []byte, wantReplayable bool) worker.DeadLetter {
	t.Helper()
	require.LessOrEqual(t, len(data), worker.MaxDeadLetterSize, "marshalled record size")
	var got worker.DeadLetter
	require.NoError(t, json.Unmarshal(data, &got))
	o := got.Original
	require.Equal(t, wantReplayable, o.Replayable())
	if wantReplayable {
		b, err := o.Bytes()
		require.NoError(t, err)
		require.True(t, bytes.Equal(body, b), "body kept byte for byte")
		require.Zero(t, o.BodySize)
		return got
	}
	require.True(t, o.Truncated)
	require.Equal(t, len(body), o.BodySize)
	require.Equal(t, hexSHA256(body), o.BodySHA256)
	require.Empty(t, o.Body)
	require.Empty(t, o.BodyBase64)
	require.True(t, utf8.ValidString(o.BodyPrefix))
	if utf8.Valid(body) {
		require.True(t, strings.HasPrefix(string(body), o.BodyPrefix), "prefix of the body")
	}
	_, err := o.Bytes()
	require.ErrorIs(t, err, worker.ErrBodyTruncated, "a truncated body is never handed out as the request")
	return got
}

// A dead letter stays under a fixed bound whatever the request was: bodies
// that escape six-fold or grow in base64, many or huge headers, huge
// free-text fields.
func TestDeadLetterBounded(t *testing.T) {
	smallJSON := []byte(`{"job_id":"cb5fa20de5fd4cf8be681d4bd6fdd2f6","reason":"<b>outage</b> & more"}`)
	huge := strings.Repeat("<", mib)
	headers := func(n int, v string) map[string][]string {
		h := map[string][]string{}
		for i := range n {
			h[fmt.Sprintf("ce-x%04d", i)] = []string{v}
		}
		return h
	}
	tests := []struct {
		name           string
		giveBody       []byte
		giveHeader     map[string][]string
		wantReplayable bool
		wantHeaders    map[string][]string
		wantDropped    int
	}{
		{name: "small JSON kept as text", giveBody: smallJSON, wantReplayable: true},
		{name: "empty body", giveBody: nil, wantReplayable: true},
		{name: "16 KiB of plain text at the bound", giveBody: repeatTo("a", 16<<10), wantReplayable: true},
		{name: "10 KiB of < kept in base64", giveBody: repeatTo("<", 10<<10), wantReplayable: true},
		{name: "10 KiB of binary kept in base64", giveBody: randomBytes(10<<10, 1), wantReplayable: true},
		{name: "200 KiB of <", giveBody: repeatTo("<", 200<<10)},
		{name: "850 KB of binary", giveBody: randomBytes(850_000, 2)},
		{name: "1 MiB of <", giveBody: repeatTo("<", mib)},
		{name: "1 MiB of binary", giveBody: randomBytes(mib, 3)},
		{name: "1 MiB of control bytes", giveBody: controlBytes(mib)},
		{name: "1 MiB of U+2028", giveBody: repeatTo("\u2028", mib)},
		{name: "1 MiB of invalid UTF-8 mixed", giveBody: repeatTo("\xff<\u2028\x00é\xe2\x80", mib)},
		{name: "prefix cut inside a rune", giveBody: append(repeatTo("a", 511), repeatTo("é", 20<<10)...)},
		{
			name: "headers: allow-list, many, huge", giveBody: smallJSON, wantReplayable: true,
			giveHeader: map[string][]string{
				"Authorization": {"Bearer secret-never-recorded"},
				"X-Custom":      {"left out"},
				"traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", huge},
				"Nats-Msg-Id":   {"cb5fa20de5fd4cf8be681d4bd6fdd2f6"},
				"ce-" + huge:    {"a huge name"},
				"Content-Type":  {"application/json"},
			},
			wantHeaders: map[string][]string{
				"traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
				"Nats-Msg-Id":  {"cb5fa20de5fd4cf8be681d4bd6fdd2f6"},
				"Content-Type": {"application/json"},
			},
			wantDropped: 2,
		},
		{name: "1000 headers: 32 kept", giveBody: smallJSON, giveHeader: headers(1000, "a"), wantReplayable: true, wantDropped: 1000 - 32},
		// Each takes 617 bytes encoded: 13 fit in 8 KiB.
		{name: "100 headers of 100 &: 8 KiB kept", giveBody: smallJSON, giveHeader: headers(100, strings.Repeat("&", 100)), wantReplayable: true, wantDropped: 100 - 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := worker.DeadLetter{
				JobID: huge, Reason: worker.ReasonInvalidRequest, StatusCode: 400, ErrorCode: huge, ErrorMsg: huge,
				RequestID: huge, Attempts: 3, Deliveries: 5, FailedAt: time.Now(), Worker: huge, TraceID: huge, SpanID: huge,
				Original: worker.NewOriginal("codearts.build.recover."+huge, 42, tt.giveHeader, tt.giveBody),
			}
			data, err := d.Marshal()
			require.NoError(t, err)
			got := requireRecordOf(t, data, tt.giveBody, tt.wantReplayable)
			require.True(t, utf8.ValidString(got.ErrorMsg))
			require.True(t, strings.HasPrefix(got.ErrorMsg, "<<<") && strings.HasSuffix(got.ErrorMsg, "…"), "error_msg cut and marked")
			require.Equal(t, worker.ReasonInvalidRequest, got.Reason)
			require.Equal(t, uint64(42), got.Original.StreamSeq)
			if tt.wantHeaders != nil {
				require.Equal(t, tt.wantHeaders, got.Original.Headers)
			}
			require.NotContains(t, string(data), "secret-never-recorded")
			require.Equal(t, tt.wantDropped, got.Original.HeadersDropped)

			// What is stored when even this is refused: no body, no headers.
			m := d.Minimal()
			mdata, err := m.Marshal()
			require.NoError(t, err)
			require.LessOrEqual(t, len(mdata), 4<<10)
			minimal := requireRecordOf(t, mdata, tt.giveBody, false)
			require.Empty(t, minimal.Original.Headers)
			require.Equal(t, len(got.Original.Headers)+got.Original.HeadersDropped, minimal.Original.HeadersDropped)
		})
	}
}

// A hand-built record (not through NewOriginal) is bounded by Marshal too.
func TestDeadLetterMarshalBoundsHandBuilt(t *testing.T) {
	body := repeatTo("<&>", mib)
	d := worker.DeadLetter{Reason: worker.ReasonClientError, Original: worker.Original{Subject: "s", StreamSeq: 7, Body: string(body)}}
	data, err := d.Marshal()
	require.NoError(t, err)
	requireRecordOf(t, data, body, false)
}

// Result events carry no body; their strings are bounded all the same.
func TestResultBounded(t *testing.T) {
	huge := strings.Repeat("<\u2028\x01", mib/3)
	r := worker.Result{JobID: huge, Outcome: worker.OutcomeDeadLettered, Reason: huge, Status: 500, ErrorCode: huge,
		RequestID: huge, Attempts: 1, Deliveries: 1, StreamSeq: 9, At: time.Now(), Worker: huge, TraceID: huge, SpanID: huge}
	data, err := r.Marshal()
	require.NoError(t, err)
	require.LessOrEqual(t, len(data), worker.MaxResultSize)
	var got worker.Result
	require.NoError(t, json.Unmarshal(data, &got))
	require.Equal(t, uint64(9), got.StreamSeq)
	require.True(t, utf8.ValidString(got.ErrorCode))
}

func FuzzDeadLetterBounded(f *testing.F) {
	f.Add([]byte("<"), uint32(200<<10), "traceparent", "x")
	f.Add([]byte{0xff, 0x00, 0xe2, 0x80, 0xa8}, uint32(300_000), "ce-type", "<&>")
	f.Add([]byte("cb5fa20de5fd4cf8be681d4bd6fdd2f6"), uint32(1), "Nats-Msg-Id", "id")
	f.Add([]byte("é"), uint32(8191), "content-type", "\u2029")
	f.Fuzz(func(t *testing.T, unit []byte, reps uint32, hkey, hval string) {
		if len(unit) == 0 {
			return
		}
		reps %= uint32(2*mib/len(unit) + 1)
		body := bytes.Repeat(unit, int(reps))
		h := map[string][]string{hkey: {hval, strings.Repeat(hval, 1000)}, "ce-" + hkey: {hval}}
		d := worker.DeadLetter{Reason: worker.ReasonMaxDeliveries, ErrorMsg: string(body[:min(len(body), 4096)]),
			Original: worker.NewOriginal("codearts.build.recover", 1, h, body)}
		data, err := d.Marshal()
		require.NoError(t, err)
		require.LessOrEqual(t, len(data), worker.MaxDeadLetterSize)
		var got worker.DeadLetter
		require.NoError(t, json.Unmarshal(data, &got))
		if got.Original.Replayable() {
			b, err := got.Original.Bytes()
			require.NoError(t, err)
			require.True(t, bytes.Equal(body, b))
		} else {
			require.Equal(t, len(body), got.Original.BodySize)
			require.Equal(t, hexSHA256(body), got.Original.BodySHA256)
		}
	})
}

// allowLargeRequests lets the request stream store messages up to the
// server's max_payload, whatever MaxMsgSize the worker gives the streams it
// creates: these tests are about bodies that got in.
func allowLargeRequests(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	s, err := env.Conn.JS.Stream(ctx, env.Conn.Config().Stream)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = int32(env.Conn.NC.MaxPayload()) // the server's max_payload, 1 MiB by default
	_, err = env.Conn.JS.UpdateStream(ctx, cfg)
	require.NoError(t, err)
}

// publishRequest stores a request and returns its stream sequence.
func publishRequest(t *testing.T, env *testenv.Env, header nats.Header, body []byte) uint64 {
	t.Helper()
	ack, err := env.Conn.JS.PublishMsg(context.Background(), &nats.Msg{Subject: env.Conn.Config().Subject, Header: header, Data: body})
	require.NoError(t, err)
	return ack.Sequence
}

// oversizePool is a pool with the max-deliveries sweep on, as `worker run`
// has it; dlq and recoverer nil mean the real ones, maxBytes 0 the default
// body limit.
func oversizePool(t *testing.T, env *testenv.Env, rec *testenv.Recorder, dlq worker.DeadLetterer, recoverer worker.Recoverer, maxBytes int) *worker.Pool {
	t.Helper()
	cons, err := env.Conn.Consumer(context.Background())
	require.NoError(t, err)
	adv, err := env.Conn.Advisories(context.Background())
	require.NoError(t, err)
	cfg := poolConfig(rec)
	qc := env.Conn.Config()
	cfg.MaxDeliver, cfg.AckWait, cfg.Name = qc.MaxDeliver, qc.AckWait, "test-worker"
	cfg.Decode.ValidRegion = env.API.AllowedRegion
	cfg.Decode.MaxBytes = maxBytes
	cfg.Results, cfg.Stranded = env.Conn, wire.Stranded{A: adv}
	if dlq == nil {
		dlq = env.Conn
	}
	if recoverer == nil {
		recoverer = wire.Recoverer(env.API)
	}
	p, err := worker.New(cfg, wire.Source{C: cons}, recoverer, dlq)
	require.NoError(t, err)
	return p
}

// requireOneResultEach checks one result event per request, none missing.
func requireOneResultEach(t *testing.T, env *testenv.Env, n int) {
	t.Helper()
	seen := map[uint64]int{}
	for _, r := range env.Results() {
		seen[r.StreamSeq]++
	}
	require.Len(t, seen, n)
	for seq, c := range seen {
		require.Equal(t, 1, c, "results for seq %d", seq)
	}
}

// requireNoHandBack checks that no request was handed back: no dead letter
// (or result) publish failed and was retried.
func requireNoHandBack(t *testing.T, rec *testenv.Recorder) {
	t.Helper()
	for _, o := range rec.Outcomes() {
		require.NotEqual(t, worker.OutcomeHandedBack, o.Kind, "seq %d handed back (%s)", o.StreamSeq, o.Reason)
	}
}

// Issue 15: a body of 200 KiB of "<" and one of 850 KB of binary (both
// under max_payload, so stored) are dead-lettered invalid_request once
// each, with their size and SHA-256, instead of failing their dead-letter
// publish (1.2 MB and 1.13 MB encoded) forever.
func TestOversizedBodiesDeadLetteredOnce(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	allowLargeRequests(t, env)
	angle := repeatTo("<", 200<<10)
	binary := randomBytes(850_000, 15)
	oversized := map[uint64][]byte{
		publishRequest(t, env, nil, angle): angle,
		publishRequest(t, env, nats.Header{
			"traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			"ce-junk":       {strings.Repeat("&", 32<<10)}, // JetStream takes at most 64 KiB of headers
			"Authorization": {"Bearer secret-never-recorded"},
		}, binary): binary,
	}
	const normal = 6
	ids := make([]string, normal)
	for i := range ids {
		ids[i] = testenv.JobID("ok")
		publishRequest(t, env, nats.Header{"Nats-Msg-Id": {ids[i]}}, []byte(ids[i]))
	}
	n := normal + len(oversized)

	rec := testenv.NewRecorder()
	env.Start(oversizePool(t, env, rec, nil, nil, 0))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() >= n },
		"terminal outcomes %d of %d (handed back %d)", rec.Terminal(), n, rec.Count(worker.OutcomeHandedBack))
	testenv.Eventually(t, 10*time.Second, func() bool { return env.Pending() == 0 }, "request stream drained, %d left", env.Pending)

	dls := env.DeadLetters()
	require.Len(t, dls, len(oversized), "one dead letter per oversized body")
	for _, d := range dls {
		body, ok := oversized[d.Original.StreamSeq]
		require.True(t, ok, "dead letter of seq %d", d.Original.StreamSeq)
		delete(oversized, d.Original.StreamSeq)
		require.Equal(t, worker.ReasonInvalidRequest, d.Reason)
		require.Contains(t, d.ErrorMsg, "over the")
		data, err := d.Marshal()
		require.NoError(t, err)
		requireRecordOf(t, data, body, false)
		require.NotContains(t, string(data), "secret-never-recorded")
		if bytes.Equal(body, binary) {
			require.Equal(t, []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, d.Original.Headers["traceparent"])
			require.Equal(t, 1, d.Original.HeadersDropped, "the 32 KiB ce-junk header")
		}
	}
	require.Empty(t, oversized, "each oversized body dead-lettered")
	require.Equal(t, normal, rec.Count(worker.OutcomeRecovered))
	require.Equal(t, n, rec.Count(worker.OutcomeRecovered)+len(dls), "recovered + dead_lettered == N")
	requireAllRecovered(t, env, ids)
	requireNoHandBack(t, rec)
	requireOneResultEach(t, env, n)
}

// A large but valid request that crashes the worker on every delivery is
// dead-lettered max_deliveries by the sweep, once, truncated; before, the
// sweep retried its 1.8 MB record every 5 s forever.
func TestStrandedOversizedRequestDeadLettered(t *testing.T) {
	env := testenv.New(t, testenv.Options{Queue: queue.Config{MaxDeliver: 2}})
	allowLargeRequests(t, env)
	poison := testenv.JobID("p")
	body := fmt.Appendf(nil, `{"job_id":%q,"pad":%q}`, poison, strings.Repeat("<", 300<<10))
	seq := publishRequest(t, env, nil, body)
	ids := publishN(env, 5, "g")

	rec := testenv.NewRecorder()
	api := wire.Recoverer(env.API)
	crashy := worker.RecoverFunc(func(ctx context.Context, r worker.Request) (string, error) {
		if r.JobID == poison {
			panic("boom")
		}
		return api.Recover(ctx, r)
	})
	env.Start(oversizePool(t, env, rec, nil, crashy, mib))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) == 1 }, "poison dead-lettered")
	testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() == 0 }, "request stream drained, %d left", env.Pending)

	dls := env.DeadLetters()
	require.Len(t, dls, 1)
	d := dls[0]
	require.Equal(t, worker.ReasonMaxDeliveries, d.Reason)
	require.Equal(t, poison, d.JobID)
	require.Equal(t, seq, d.Original.StreamSeq)
	data, err := d.Marshal()
	require.NoError(t, err)
	requireRecordOf(t, data, body, false)
	require.Equal(t, len(ids), rec.Count(worker.OutcomeRecovered))
	requireAllRecovered(t, env, ids)
	requireOneResultEach(t, env, len(ids)+1)
}

// refuseOver is a DeadLetterer that refuses records over limit bytes as the
// NATS client does for one over the server's max_payload.
type refuseOver struct {
	next  worker.DeadLetterer
	limit int
}

func (r *refuseOver) DeadLetter(ctx context.Context, msgID string, record []byte) error {
	if len(record) > r.limit {
		return fmt.Errorf("publish to codearts.build.recover.dlq: %w", nats.ErrMaxPayload)
	}
	return r.next.DeadLetter(ctx, msgID, record)
}

// A dead letter refused as too large, by the dead-letter stream's
// MaxMsgSize or by the client's max_payload check, is a permanent refusal:
// the minimal record (no body, no headers) is stored instead, once, and the
// request is acked; before, the request was handed back forever.
func TestDeadLetterRefusedAsTooLargeStoredMinimal(t *testing.T) {
	tests := []struct {
		name     string
		giveDLQ  func(env *testenv.Env) worker.DeadLetterer
		giveSize int32 // MaxMsgSize of the dead-letter stream; 0 leaves it
	}{
		{"stream MaxMsgSize", func(env *testenv.Env) worker.DeadLetterer { return env.Conn }, 2 << 10},
		{"client max_payload", func(env *testenv.Env) worker.DeadLetterer {
			return &refuseOver{next: env.Conn, limit: 2 << 10}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{Sim: []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}})
			if tt.giveSize > 0 {
				ctx := context.Background()
				s, err := env.Conn.JS.Stream(ctx, env.Conn.Config().DLQStream)
				require.NoError(t, err)
				cfg := s.CachedInfo().Config
				cfg.MaxMsgSize = tt.giveSize
				_, err = env.Conn.JS.UpdateStream(ctx, cfg)
				require.NoError(t, err)
			}
			id := testenv.JobID("404")
			// 8 KiB: kept whole in the bounded record, over the 2 KiB limit.
			body := fmt.Appendf(nil, `{"job_id":%q,"pad":%q}`, id, strings.Repeat("x", 8<<10))
			seq := publishRequest(t, env, nats.Header{"Nats-Msg-Id": {id}}, body)

			rec := testenv.NewRecorder()
			env.Start(oversizePool(t, env, rec, tt.giveDLQ(env), nil, 0))
			testenv.Eventually(t, 30*time.Second, func() bool { return rec.Terminal() == 1 },
				"terminal (handed back %d)", rec.Count(worker.OutcomeHandedBack))
			testenv.Eventually(t, 10*time.Second, func() bool { return env.Pending() == 0 }, "request acked")

			dls := env.DeadLetters()
			require.Len(t, dls, 1)
			d := dls[0]
			require.Equal(t, worker.ReasonClientError, d.Reason)
			require.Equal(t, id, d.JobID)
			require.Equal(t, 404, d.StatusCode)
			require.Equal(t, seq, d.Original.StreamSeq)
			require.Empty(t, d.Original.Headers)
			require.Equal(t, 1, d.Original.HeadersDropped, "Nats-Msg-Id")
			data, err := d.Marshal()
			require.NoError(t, err)
			requireRecordOf(t, data, body, false)
			require.Empty(t, d.Original.BodyPrefix, "the minimal record keeps no prefix")
			require.Equal(t, 1, rec.Count(worker.OutcomeDeadLettered))
			requireNoHandBack(t, rec)
			requireOneResultEach(t, env, 1)
		})
	}
}
