package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Tests of the operator commands (enqueue, dlq, status). They run the
// commands in-process against a real embedded nats-server.

var updateGolden = flag.Bool("update", false, "rewrite the checkGolden files in testdata/")

// cliResult is what one command run printed and returned.
type cliResult struct {
	out, err string
	code     int
}

// cli runs the command line as the binary does (Main).
func cli(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return cliResult{out: out.String(), err: errb.String(), code: code}
}

// cliContext runs the command line under ctx (cancel it to act as Ctrl-C),
// mapping errors to exit codes as Main does.
func cliContext(ctx context.Context, stdin string, args ...string) cliResult {
	var out, errb bytes.Buffer
	root := newRoot(strings.NewReader(stdin), &out, &errb)
	root.SetArgs(args)
	code := 0
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(&errb, "worker: %v\n", err)
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return cliResult{out: out.String(), err: errb.String(), code: code}
}

// toolEnv starts NATS (streams and consumer created) and the simulator,
// and returns the flags that point a command at them.
func toolEnv(t *testing.T, o testenv.Options) (*testenv.Env, []string) {
	t.Helper()
	noToolLeaks(t)
	env := testenv.New(t, o)
	return env, []string{"--nats-url", env.Queue.URL}
}

// noToolLeaks checks, after every other cleanup, that the test left no
// goroutine behind.
func noToolLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore,
			// The SDK client's idle keep-alive connections close on their own.
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		)
	})
}

func withFlags(cmd []string, flags []string, more ...string) []string {
	out := append(append([]string{}, cmd...), flags...)
	return append(out, more...)
}

// checkGolden compares got with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "checkGolden file missing: run go test -run %s -update", t.Name())
	require.Equal(t, string(want), got, "output differs from %s (go test -update rewrites it)", path)
}

// storedRequest is a message of the request stream.
type storedRequest struct {
	seq    uint64
	msgID  string
	header map[string][]string
	body   string
	req    worker.Request
}

// storedRequests reads the request stream by sequence (a work-queue stream
// admits no second reader; nothing acks in these tests).
func storedRequests(t *testing.T, env *testenv.Env) []storedRequest {
	t.Helper()
	ctx := context.Background()
	stream, err := env.Conn.Stream(ctx, env.Conn.Config().Stream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	var out []storedRequest
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, queue.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		req, err := worker.Decode(m.Data, m.Header, worker.DecodeOptions{ValidRegion: func(string) bool { return true }})
		require.NoError(t, err, "stream seq %d", m.Seq)
		var id string
		if v := m.Header["Nats-Msg-Id"]; len(v) > 0 {
			id = v[0]
		}
		out = append(out, storedRequest{seq: m.Seq, msgID: id, header: m.Header, body: string(m.Data), req: req})
	}
	return out
}

// closedURL is a NATS URL where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "nats://" + addr
}

// seqJobID is a valid, deterministic job id: prefix then n in hex.
func seqJobID(prefix string, n int) string {
	s := fmt.Sprintf("%s%032x", prefix, n)
	return s[:len(prefix)] + s[len(s)-(32-len(prefix)):]
}

// Fixture dead letters, published by the tests themselves so that times,
// sequences and sizes are fixed.
var fixtureBase = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

type fixtureLetter struct {
	dl  worker.DeadLetter
	raw string // when set, stored instead of a record
}

func fixtureDeadLetters() []fixtureLetter {
	at := func(h int) time.Time { return fixtureBase.Add(time.Duration(h) * time.Hour) }
	orig := func(seq uint64, body string) worker.Original {
		return worker.NewOriginal("codearts.build.recover", seq, map[string][]string{"Nats-Msg-Id": {body}}, []byte(body))
	}
	letter := func(job, reason string, status int, code, msg string, h int) worker.DeadLetter {
		return worker.DeadLetter{
			JobID: job, Reason: reason, StatusCode: status, ErrorCode: code, ErrorMsg: msg,
			RequestID: fmt.Sprintf("req-%02d", h), Attempts: 1, Deliveries: 1,
			FirstAttemptAt: at(h).Add(-time.Second), EnqueuedAt: at(h).Add(-time.Minute), FailedAt: at(h),
			Worker: "recover-worker-7d9f-x2k4", Original: orig(uint64(100+h), job),
		}
	}
	invalid := letter("", worker.ReasonInvalidRequest, 0, "", `invalid request: job_id "../etc/passwd" is not 32 ASCII letters or digits`, 2)
	invalid.Attempts, invalid.RequestID, invalid.FirstAttemptAt = 0, "", time.Time{}
	invalid.Original = orig(102, "../etc/passwd")
	exhausted := letter("a1b2c3d4e5f60718293a4b5c6d7e8f90", worker.ReasonRetriesExhausted, 503, "APIG.0613", "Service unavailable", 3)
	exhausted.Attempts, exhausted.Deliveries = 15, 5
	maxDel := letter("b1b2c3d4e5f60718293a4b5c6d7e8f90", worker.ReasonMaxDeliveries, 0, "", "reached the consumer's MaxDeliver (5) without finishing", 4)
	maxDel.Attempts, maxDel.RequestID = 0, ""
	return []fixtureLetter{
		{dl: letter("404a0000000000000000000000000001", worker.ReasonClientError, 404, "CB.00060214", "The build job does not exist", 0)},
		{dl: letter("403a0000000000000000000000000002", worker.ReasonClientError, 403, "CB.00060201", "You do not have permission to perform this operation on the build job", 1)},
		{dl: invalid},
		{dl: exhausted},
		{dl: maxDel},
		{dl: letter("404a0000000000000000000000000006", worker.ReasonClientError, 404, "CB.00060214", "The build job does not exist;\nsee the\tconsole", 5)},
		{dl: letter("400a0000000000000000000000000007", worker.ReasonClientError, 400, "CB.00060200", "Invalid request parameter: job_id", 6)},
		{raw: "this is not a dead-letter record"},
		{dl: letter("c1b2c3d4e5f60718293a4b5c6d7e8f90", worker.ReasonRetriesExhausted, 500, "CB.00060211", "Too many requests", 7)},
	}
}

// publishFixture stores the fixture dead letters at DLQ sequences 1…9.
func publishFixture(t *testing.T, env *testenv.Env) []fixtureLetter {
	t.Helper()
	letters := fixtureDeadLetters()
	for i, l := range letters {
		data := []byte(l.raw)
		if l.raw == "" {
			var err error
			data, err = l.dl.Marshal()
			require.NoError(t, err)
		}
		_, err := env.Conn.Publish(context.Background(), env.Conn.Config().DLQSubject, fmt.Sprintf("fixture-%d", i), nil, data)
		require.NoError(t, err)
	}
	return letters
}

// standard404 is the simulator answering 404 for job ids starting "404".
var standard404 = []codeartssim.Option{codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes())}

func oneLineError(t *testing.T, r cliResult, want string) {
	t.Helper()
	require.NotZero(t, r.code, "exit code; stderr: %s", r.err)
	require.Empty(t, r.out, "nothing on stdout")
	lines := strings.Split(strings.TrimRight(r.err, "\n"), "\n")
	require.Len(t, lines, 1, "one line on stderr, got %q", r.err)
	require.True(t, strings.HasPrefix(lines[0], "worker: "), lines[0])
	require.Contains(t, lines[0], want)
}

// Every operator command fails with one line on stderr and a non-zero exit
// for a bad argument, an unreachable NATS or a missing stream.
func TestDLQEnqueueStatusErrors(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	down := []string{"--nats-url", closedURL(t), "--connect-timeout", "300ms"}
	id := seqJobID("a", 1)
	tests := []struct {
		name     string
		giveArgs []string
		wantErr  string
	}{
		{"enqueue nothing", withFlags([]string{"enqueue"}, nats), "no job ids"},
		{"enqueue format", withFlags([]string{"enqueue", id, "--format", "xml"}, nats), `format: "xml" is not auto, lines or csv`},
		{"enqueue dedup key", withFlags([]string{"enqueue", id, "--dedup-key", "same"}, nats), `dedup-key: "same" is not job_id, none or a template`},
		{"enqueue dedup template", withFlags([]string{"enqueue", id, "--dedup-key", "{{.Nope}}"}, nats), "dedup-key: template"},
		{"enqueue rate", withFlags([]string{"enqueue", id, "--rate", "-1"}, nats), "rate: -1 is negative"},
		{"enqueue file", withFlags([]string{"enqueue", "--file", "/does/not/exist"}, nats), "file: open /does/not/exist"},
		{"enqueue csv without job_id", withFlags([]string{"enqueue", "--format", "csv", "--file", "-"}, nats), "csv header has no job_id column"},
		{"enqueue unknown flag", withFlags([]string{"enqueue", id, "--nope"}, nats), "unknown flag: --nope"},
		{"enqueue missing stream", withFlags([]string{"enqueue", id, "--stream", "NOPE"}, nats), "stream NOPE does not exist (check --stream"},
		{"enqueue wrong subject", withFlags([]string{"enqueue", id, "--subject", "elsewhere"}, nats), "stream CODEARTS_RECOVER does not store subject elsewhere (its subjects: codearts.build.recover; check --subject)"},
		{"enqueue unreachable", withFlags([]string{"enqueue", id}, down), "not reachable within 300ms (--connect-timeout)"},
		{"list reason", withFlags([]string{"dlq", "list", "--reason", "oops"}, nats), `reason: "oops" is not one of client_error`},
		{"list status", withFlags([]string{"dlq", "list", "--status", "4x"}, nats), `status: "4x" is not an HTTP status`},
		{"list since", withFlags([]string{"dlq", "list", "--since", "yesterday"}, nats), `since: "yesterday" is not a time`},
		{"list since after until", withFlags([]string{"dlq", "list", "--since", "1h", "--until", "2h"}, nats), "since: must be before --until"},
		{"list missing stream", withFlags([]string{"dlq", "list", "--dlq-stream", "NOPE"}, nats), "stream NOPE does not exist (check --dlq-stream"},
		{"list unreachable", withFlags([]string{"dlq", "list"}, down), "not reachable"},
		{"list argument", withFlags([]string{"dlq", "list", "7"}, nats), `unknown command "7"`},
		{"dlq unknown", []string{"dlq", "foo"}, `unknown command "foo" for "worker dlq"`},
		{"show nothing", withFlags([]string{"dlq", "show"}, nats), "requires at least 1 arg"},
		{"show bad seq", withFlags([]string{"dlq", "show", "x1"}, nats), `"x1" is not a dead-letter sequence`},
		{"show missing", withFlags([]string{"dlq", "show", "42"}, nats), "no dead letter 42 in CODEARTS_RECOVER_DLQ"},
		{"show unreachable", withFlags([]string{"dlq", "show", "1"}, down), "not reachable"},
		{"replay unselected", withFlags([]string{"dlq", "replay"}, nats), "say which dead letters to replay"},
		{"replay all and filter", withFlags([]string{"dlq", "replay", "--all", "--reason", "client_error"}, nats), "all: not with SEQ or filters"},
		{"replay missing stream", withFlags([]string{"dlq", "replay", "--all", "--stream", "NOPE"}, nats), "stream NOPE does not exist"},
		{"replay wrong subject", withFlags([]string{"dlq", "replay", "--all", "--subject", "elsewhere"}, nats), "does not store subject elsewhere"},
		{"replay unreachable", withFlags([]string{"dlq", "replay", "--all"}, down), "not reachable"},
		{"purge missing stream", withFlags([]string{"dlq", "purge", "--yes", "--dlq-stream", "NOPE"}, nats), "stream NOPE does not exist"},
		{"purge unreachable", withFlags([]string{"dlq", "purge", "--yes"}, down), "not reachable"},
		{"status missing stream", withFlags([]string{"status", "--stream", "NOPE"}, nats), "stream NOPE does not exist"},
		{"status unreachable", withFlags([]string{"status"}, down), "not reachable"},
		{"status timeout", withFlags([]string{"status", "--connect-timeout", "0s"}, nats), "connect-timeout: 0s is not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oneLineError(t, cli(t, "name,region\nx,y\n", tt.giveArgs...), tt.wantErr)
		})
	}
	require.Zero(t, env.Pending(), "nothing published by a failed command")
}

// The environment fills the connection flags, as for `worker run`; flags
// win over it; command-specific flags do not read it.
func TestStatusReadsNATSEnvironment(t *testing.T) {
	env, _ := toolEnv(t, testenv.Options{})
	t.Setenv("NATS_URL", env.Queue.URL)
	t.Setenv("RECOVER_STREAM", "NOPE")
	r := cli(t, "", "status")
	oneLineError(t, r, "stream NOPE does not exist")
	r = cli(t, "", "status", "--stream", env.Conn.Config().Stream, "--json")
	require.Zero(t, r.code, r.err)
	require.Contains(t, r.out, `"name": "CODEARTS_RECOVER"`)

	publishFixture(t, env)
	t.Setenv("RECOVER_YES", "true")
	r = cli(t, "", "dlq", "purge", "--stream", env.Conn.Config().Stream)
	require.NotZero(t, r.code, "RECOVER_YES must not answer the prompt")
	require.EqualValues(t, 9, env.DLQCount())
}

// Each command's help has examples and goes to stdout.
func TestDLQEnqueueStatusHelp(t *testing.T) {
	for _, cmd := range [][]string{{"enqueue"}, {"dlq"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "replay"}, {"dlq", "purge"}, {"status"}} {
		r := cli(t, "", append(cmd, "--help")...)
		require.Zero(t, r.code, r.err)
		require.Contains(t, r.out, "Examples:\n  worker "+strings.Join(cmd, " "), "help of %v", cmd)
	}
}

func TestDLQEnqueueStatusSubjectMatches(t *testing.T) {
	tests := []struct {
		givePattern, giveSubject string
		want                     bool
	}{
		{"codearts.build.recover", "codearts.build.recover", true},
		{"codearts.build.recover", "codearts.build.recover.dlq", false},
		{"codearts.build.*", "codearts.build.recover", true},
		{"codearts.*", "codearts.build.recover", false},
		{"codearts.>", "codearts.build.recover", true},
		{"codearts.build.recover.>", "codearts.build.recover", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, subjectMatches(tt.givePattern, tt.giveSubject), "%s ~ %s", tt.givePattern, tt.giveSubject)
	}
}
