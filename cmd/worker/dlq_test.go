package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// listedSeqs returns the dlq_seq of each JSON line of `dlq list --json`.
func listedSeqs(t *testing.T, out string) []uint64 {
	t.Helper()
	var seqs []uint64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r admin.Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func TestDLQListFilters(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	publishFixture(t, env)
	// Fixture: 1 404, 2 403, 3 invalid, 4 retries_exhausted 503, 5
	// max_deliveries, 6 404, 7 400, 8 unreadable, 9 retries_exhausted 500;
	// failed at 2024-06-01 00:00 + 0…7 hours (8 has none).
	tests := []struct {
		name     string
		giveArgs []string
		wantSeqs []uint64
	}{
		{"no filter lists all, unreadable too", nil, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"reason", []string{"--reason", "client_error"}, []uint64{1, 2, 6, 7}},
		{"reasons", []string{"--reason", "invalid_request,max_deliveries"}, []uint64{3, 5}},
		{"repeated flag", []string{"--reason", "invalid_request", "--reason", "max_deliveries"}, []uint64{3, 5}},
		{"status", []string{"--status", "404"}, []uint64{1, 6}},
		{"status class", []string{"--status", "4xx"}, []uint64{1, 2, 6, 7}},
		{"no API answer", []string{"--status", "0"}, []uint64{3, 5}},
		{"error code any case", []string{"--error-code", "cb.00060214,APIG.0613"}, []uint64{1, 4, 6}},
		{"job id", []string{"--job-id", "403a0000000000000000000000000002"}, []uint64{2}},
		{"since until", []string{"--since", "2024-06-01T03:00:00Z", "--until", "2024-06-01T06:00:00Z"}, []uint64{4, 5, 6}},
		{"since date", []string{"--since", "2024-06-02"}, nil},
		{"combined", []string{"--reason", "client_error", "--status", "403,400"}, []uint64{2, 7}},
		{"limit", []string{"--status", "4xx", "--limit", "3"}, []uint64{1, 2, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, "", withFlags([]string{"dlq", "list", "--json"}, nats, tt.giveArgs...)...)
			require.Zero(t, r.code, r.err)
			require.Equal(t, tt.wantSeqs, listedSeqs(t, r.out))
			if tt.wantSeqs == nil {
				require.Equal(t, "no dead letters match (9 in CODEARTS_RECOVER_DLQ)\n", r.err)
			} else {
				require.Equal(t, fmt.Sprintf("%d dead letters listed\n", len(tt.wantSeqs)), r.err)
			}
		})
	}
}

func TestDLQTablesGolden(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	letters := publishFixture(t, env)

	r := cli(t, "", withFlags([]string{"dlq", "list"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "dlq_list.golden", r.out)

	// -o yaml: one document per dead letter, the same records as -o json.
	r = cli(t, "", withFlags([]string{"dlq", "list", "-o", "yaml", "--reason", "client_error"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "dlq_list.yaml.golden", r.out)
	ydec := yaml.NewDecoder(strings.NewReader(r.out))
	var seqs []uint64
	for {
		var doc struct {
			Seq uint64 `yaml:"dlq_seq"`
		}
		if err := ydec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		seqs = append(seqs, doc.Seq)
	}
	require.Equal(t, []uint64{1, 2, 6, 7}, seqs)

	r = cli(t, "", withFlags([]string{"dlq", "list", "--width", "140"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "dlq_list_width140.golden", r.out)
	for line := range strings.Lines(r.out) {
		require.LessOrEqual(t, len([]rune(strings.TrimSuffix(line, "\n"))), 140, line)
	}

	r = cli(t, "", withFlags([]string{"dlq", "show", "2", "3"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "dlq_show.golden", r.out)
	dec := json.NewDecoder(strings.NewReader(r.out))
	var shown admin.Record
	require.NoError(t, dec.Decode(&shown))
	require.Equal(t, uint64(2), shown.Seq)
	require.Equal(t, letters[1].dl, shown.DeadLetter, "the whole record, original included")

	// -o yaml: the same record as a YAML document; a table is no record.
	r = cli(t, "", withFlags([]string{"dlq", "show", "2", "-o", "yaml"}, nats)...)
	require.Zero(t, r.code, r.err)
	var shownYAML struct {
		Seq   uint64 `yaml:"dlq_seq"`
		JobID string `yaml:"job_id"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(r.out), &shownYAML), r.out)
	require.Equal(t, uint64(2), shownYAML.Seq)
	require.Equal(t, letters[1].dl.JobID, shownYAML.JobID)
	r = cli(t, "", withFlags([]string{"dlq", "show", "2", "-o", "table"}, nats)...)
	require.Equal(t, exitUsage, r.code, r.err)

	r = cli(t, "", withFlags([]string{"dlq", "replay", "--reason", "client_error", "--dry-run"}, nats)...)
	require.Zero(t, r.code, r.err)
	checkGolden(t, "dlq_replay_dry_run.golden", r.out)
	require.Equal(t, "would replay 4 dead letters to codearts.build.recover (dry run: nothing changed)\n", r.err)
	require.EqualValues(t, 9, env.DLQCount(), "a dry run changes nothing")
	require.Zero(t, env.Pending())
}

// Dead-letter 50 requests (the API answers 404), make the API succeed,
// replay them: all 50 recovered once, the dead-letter stream empty.
func TestDLQReplayRoundTrip(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{Sim: standard404})
	ids := deadLetter50(t, env)

	env.Sim.Configure(codeartssim.WithoutOutcomes())
	r := cli(t, "", withFlags([]string{"dlq", "replay", "--reason", "client_error", "--json"}, nats)...)
	require.Zero(t, r.code, r.err)
	var s admin.ReplaySummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), r.out)
	require.Equal(t, admin.ReplaySummary{Matched: 50, Replayed: 50}, s)
	require.Zero(t, env.DLQCount(), "each dead letter removed after its replay's ack")

	// The replays are the original requests, linked to their dead letters.
	stored := storedRequests(t, env)
	require.Len(t, stored, 50)
	for _, m := range stored {
		require.True(t, ids[m.req.JobID])
		link := m.header[admin.ReplayOfHeader]
		require.Len(t, link, 1)
		require.True(t, strings.HasPrefix(m.msgID, "replay-"+link[0]+"-"), m.msgID)
		require.Equal(t, m.req.JobID, m.body, "the original body, byte for byte")
	}

	recoverAll(t, env, 50)
	for id := range ids {
		require.Equal(t, 1, env.Sim.Recovered(id), "job %s recovered once", id)
	}
	require.Zero(t, env.DLQCount())
	require.Zero(t, env.Pending())
}

// A replay interrupted between the publish ack and the removal of the dead
// letter, then run again (after the replays were even recovered): no
// request is lost or replayed twice.
func TestDLQReplayInterruptedBeforeRemoval(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{Sim: standard404})
	ids := deadLetter50(t, env)
	env.Sim.Configure(codeartssim.WithoutOutcomes())

	replayHook = func(uint64) error { return errors.New("simulated crash before the removal") }
	t.Cleanup(func() { replayHook = nil })
	r := cli(t, "", withFlags([]string{"dlq", "replay", "--reason", "client_error", "--json"}, nats)...)
	require.Equal(t, 1, r.code, r.err)
	var s admin.ReplaySummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), r.out)
	require.Equal(t, admin.ReplaySummary{Matched: 50, Failed: 50}, s)
	require.EqualValues(t, 50, env.DLQCount(), "no dead letter removed")
	require.EqualValues(t, 50, env.Pending(), "every replay stored")
	recoverAll(t, env, 50)

	replayHook = nil
	before, err := env.Conn.StreamInfo(context.Background(), env.Conn.Config().Stream)
	require.NoError(t, err)
	r = cli(t, "", withFlags([]string{"dlq", "replay", "--reason", "client_error", "--json"}, nats)...)
	require.Zero(t, r.code, r.err)
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), r.out)
	require.Equal(t, admin.ReplaySummary{Matched: 50, AlreadyReplayed: 50}, s)
	after, err := env.Conn.StreamInfo(context.Background(), env.Conn.Config().Stream)
	require.NoError(t, err)
	require.Equal(t, before.State.LastSeq, after.State.LastSeq, "nothing stored by the rerun")
	require.Zero(t, env.DLQCount())
	for id := range ids {
		require.Equal(t, int64(1), env.Sim.Stats().Jobs[id].Recovered, "job %s recovered once", id)
	}
}

// deadLetter50 enqueues 50 jobs the simulator answers 404 for and runs a
// pool until all are dead-lettered.
func deadLetter50(t *testing.T, env *testenv.Env) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for i := range 50 {
		id := seqJobID("404", i)
		ids[id] = true
		env.Publish(id, id)
	}
	rec := testenv.NewRecorder()
	run := env.Start(env.Pool(nil, worker.Config{Concurrency: 8, Observer: rec}))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeDeadLettered) >= 50 },
		"dead-lettered %d of 50", rec.Count(worker.OutcomeDeadLettered))
	run.Stop(t)
	require.EqualValues(t, 50, env.DLQCount())
	for _, d := range env.DeadLetters() {
		require.Equal(t, worker.ReasonClientError, d.Reason)
		require.Equal(t, 404, d.StatusCode)
	}
	return ids
}

// recoverAll runs a pool until n requests are recovered.
func recoverAll(t *testing.T, env *testenv.Env, n int) {
	t.Helper()
	rec := testenv.NewRecorder()
	run := env.Start(env.Pool(nil, worker.Config{Concurrency: 8, Observer: rec}))
	testenv.Eventually(t, 30*time.Second, func() bool { return rec.Count(worker.OutcomeRecovered) >= n },
		"recovered %d of %d", rec.Count(worker.OutcomeRecovered), n)
	run.Stop(t)
	require.Equal(t, n, rec.Count(worker.OutcomeRecovered))
	require.Zero(t, rec.Count(worker.OutcomeDeadLettered))
	require.Zero(t, env.Pending())
}

func TestDLQPurge(t *testing.T) {
	t.Run("filtered, needs --yes without a terminal", func(t *testing.T) {
		env, nats := toolEnv(t, testenv.Options{})
		publishFixture(t, env)
		r := cli(t, "", withFlags([]string{"dlq", "purge", "--reason", "client_error"}, nats)...)
		oneLineError(t, r, "Delete 4 dead letters from CODEARTS_RECOVER_DLQ for good? Pass --yes to confirm")
		require.EqualValues(t, 9, env.DLQCount())

		r = cli(t, "", withFlags([]string{"dlq", "purge", "--reason", "client_error", "--yes"}, nats)...)
		require.Zero(t, r.code, r.err)
		require.Equal(t, "purged 4 dead letters from CODEARTS_RECOVER_DLQ\n", r.out)
		r = cli(t, "", withFlags([]string{"dlq", "list", "--json"}, nats)...)
		require.Equal(t, []uint64{3, 4, 5, 8, 9}, listedSeqs(t, r.out))
	})
	t.Run("prompt on a terminal", func(t *testing.T) {
		env, nats := toolEnv(t, testenv.Options{})
		publishFixture(t, env)
		isTerminal = func(any) bool { return true }
		t.Cleanup(func() { isTerminal = defaultIsTerminal })

		r := cli(t, "n\n", withFlags([]string{"dlq", "purge", "--status", "5xx"}, nats)...)
		require.Equal(t, 1, r.code)
		require.Equal(t, "Delete 2 dead letters from CODEARTS_RECOVER_DLQ for good? [y/N] worker: not confirmed; nothing purged\n", r.err)
		require.EqualValues(t, 9, env.DLQCount())

		r = cli(t, "y\n", withFlags([]string{"dlq", "purge", "--status", "5xx"}, nats)...)
		require.Zero(t, r.code, r.err)
		require.Equal(t, "purged 2 dead letters from CODEARTS_RECOVER_DLQ\n", r.out)
		require.EqualValues(t, 7, env.DLQCount())
	})
	t.Run("everything", func(t *testing.T) {
		env, nats := toolEnv(t, testenv.Options{})
		publishFixture(t, env)
		r := cli(t, "", withFlags([]string{"dlq", "purge", "--yes"}, nats)...)
		require.Zero(t, r.code, r.err)
		require.Equal(t, "purged 9 dead letters from CODEARTS_RECOVER_DLQ\n", r.out)
		require.Zero(t, env.DLQCount())
		r = cli(t, "", withFlags([]string{"dlq", "purge", "--yes"}, nats)...)
		require.Zero(t, r.code, r.err)
		require.Equal(t, "no dead letters match; nothing purged\n", r.out)
	})
}

// A dead letter whose original body was too large to keep (issue 15) is
// never replayed: its prefix is not the request. show prints its size and
// hash, a dry run and a replay skip it with a line saying so, count it, and
// leave it in place; the replay exits non-zero.
func TestDLQReplaySkipsTruncated(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	ctx := context.Background()
	body := strings.Repeat("<", 200<<10)
	sum := sha256.Sum256([]byte(body))
	sha := hex.EncodeToString(sum[:])
	job := seqJobID("404", 2)
	letters := []worker.DeadLetter{
		{Reason: worker.ReasonInvalidRequest, ErrorMsg: "invalid request: body of 204800 bytes is over the 65536 byte limit",
			Deliveries: 1, FailedAt: fixtureBase, Original: worker.NewOriginal("codearts.build.recover", 1, nil, []byte(body))},
		{JobID: job, Reason: worker.ReasonClientError, StatusCode: 404, Deliveries: 1, FailedAt: fixtureBase,
			Original: worker.NewOriginal("codearts.build.recover", 2, map[string][]string{"Nats-Msg-Id": {job}}, []byte(job))},
	}
	for i, d := range letters {
		data, err := d.Marshal()
		require.NoError(t, err)
		_, err = env.Conn.Publish(ctx, env.Conn.Config().DLQSubject, fmt.Sprintf("t-%d", i), nil, data)
		require.NoError(t, err)
	}
	skipLine := fmt.Sprintf("dead letter 1: not replayable: body truncated (204800 bytes, sha256 %s)\n", sha)

	r := cli(t, "", withFlags([]string{"dlq", "show", "1"}, nats)...)
	require.Zero(t, r.code, r.err)
	var shown admin.Record
	require.NoError(t, json.Unmarshal([]byte(r.out), &shown))
	require.True(t, shown.Original.Truncated)
	require.Equal(t, 200<<10, shown.Original.BodySize)
	require.Equal(t, sha, shown.Original.BodySHA256)
	require.Contains(t, r.out, `"body_sha256": "`+sha+`"`)
	require.Equal(t, fmt.Sprintf("dead letter 1: original body of 204800 bytes not kept (sha256 %s); not replayable\n", sha), r.err)

	r = cli(t, "", withFlags([]string{"dlq", "replay", "--all", "--dry-run"}, nats)...)
	require.Zero(t, r.code, r.err)
	require.Equal(t, skipLine+"would replay 1 dead letters to codearts.build.recover (dry run: nothing changed; 1 not replayable: body truncated)\n", r.err)
	require.NotContains(t, r.out, "invalid_request", "listed as not replayable, not as a replay")

	r = cli(t, "", withFlags([]string{"dlq", "replay", "--all", "--json", "-q"}, nats)...)
	require.Equal(t, 1, r.code, r.err)
	var s admin.ReplaySummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), r.out)
	require.Equal(t, admin.ReplaySummary{Matched: 2, Replayed: 1, NotReplayable: 1}, s)
	require.Equal(t, skipLine+"worker: 1 dead letters not replayable: body truncated (they stay in CODEARTS_RECOVER_DLQ; 'worker dlq show SEQ' prints each body's size and SHA-256)\n", r.err)
	require.EqualValues(t, 1, env.DLQCount(), "the truncated dead letter stays")
	stored := storedRequests(t, env)
	require.Len(t, stored, 1, "only the replayable request is published; never the prefix")
	require.Equal(t, job, stored[0].body)

	r = cli(t, "", withFlags([]string{"dlq", "replay", "--all", "-q"}, nats)...)
	require.Equal(t, 1, r.code, r.err)
	require.Equal(t, "replayed 0 of 1 dead letters to codearts.build.recover (0 already replayed earlier, 0 failed, 0 gone, 1 not replayable: body truncated)\n", r.out)
	require.EqualValues(t, 1, env.DLQCount())
}

// Every column of the dead-letter table is folded: C0 and C1 controls, DEL,
// line separators and bidirectional controls become spaces, so a record a
// producer shaped cannot move the cursor or reorder the row.
func TestFlattenTerminalControls(t *testing.T) {
	tests := []struct {
		give, want string
	}{
		{"plain text", "plain text"},
		{"line\nbreak\ttab\rret", "line break tab ret"},
		{"esc \x1b[2J clear", "esc  [2J clear"},
		{"c1 csi \u009b2J", "c1 csi  2J"},
		{"del\x7f", "del "},
		{"sep\u2028par\u2029", "sep par "},
		{"bidi \u202eevil\u202c ok", "bidi  evil  ok"},
		{"isolate \u2066x\u2069", "isolate  x "},
		{"marks \u200e\u200f\u061c", "marks    "},
		{"kept: 中文 é ✓", "kept: 中文 é ✓"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, flatten(tt.give), "%q", tt.give)
	}
	var out bytes.Buffer
	tbl := newDLQTable(&out, 1, 0)
	require.NoError(t, tbl.row(admin.Record{Seq: 1, DeadLetter: worker.DeadLetter{
		JobID: "job\u202eid", Reason: "client_error\x1b[31m", ErrorCode: "CB.\u009b1m", ErrorMsg: "msg\u2066",
	}}))
	require.NoError(t, tbl.flush())
	for _, r := range out.String() {
		require.False(t, r == 0x1b || r >= 0x80 && r <= 0x9f || r == '\u202e' || r == '\u2066', "control %U in the table", r)
	}
}
