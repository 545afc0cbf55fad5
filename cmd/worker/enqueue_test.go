package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
)

var enqueueCmd = []string{"enqueue"}

func parseEnqueueSummary(t *testing.T, r cliResult) enqueueSummary {
	t.Helper()
	var s enqueueSummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &s), "stdout: %s\nstderr: %s", r.out, r.err)
	return s
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// 10,000 lines, 3 invalid and 100 repeating an earlier id: exactly the
// valid unique ids are stored, the invalid lines are reported by number,
// and a rerun stores nothing more (duplicates counted from the acks).
func TestEnqueueFileWithInvalidAndRepeatedLines(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	const n = 10000
	invalid := map[int]string{
		17:   "not-a-job-id",
		5000: strings.Repeat("a", 31),
		9999: fmt.Sprintf(`{"job_id":%q,"region":"mars-1"}`, seqJobID("f", 9999)),
	}
	lines := make([]string, 0, n)
	want := map[string]bool{}
	repeats := 0
	for i := 1; i <= n; i++ {
		switch {
		case invalid[i] != "":
			lines = append(lines, invalid[i])
		case i%100 == 50:
			lines = append(lines, lines[i-2]) // the line before, again
			repeats++
		default:
			id := seqJobID("e", i)
			lines = append(lines, id)
			want[id] = true
		}
	}
	require.Equal(t, 100, repeats)
	require.Len(t, want, n-3-100)
	path := writeTemp(t, "jobs.txt", strings.Join(lines, "\n")+"\n")

	r := cli(t, "", withFlags(enqueueCmd, nats, "--file", path, "--json")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	s := parseEnqueueSummary(t, r)
	require.Equal(t, n, s.Read)
	require.Equal(t, 3, s.Invalid)
	require.EqualValues(t, len(want), s.Published)
	require.EqualValues(t, 100, s.Duplicates)
	require.Zero(t, s.Failed)
	require.Zero(t, s.NotSent)
	var gotLines []int
	for _, e := range s.InvalidLines {
		gotLines = append(gotLines, e.Line)
	}
	require.Equal(t, []int{17, 5000, 9999}, gotLines)
	require.Contains(t, r.err, "invalid line 17: invalid request: job_id \"not-a-job-id\"")
	require.Contains(t, r.err, "invalid line 5000: ")
	require.Contains(t, r.err, `invalid line 9999: invalid request: region "mars-1" is not in the allowed set`)
	require.Contains(t, r.err, "worker: 3 invalid entries were not published")

	stored := storedRequests(t, env)
	require.Len(t, stored, len(want))
	for _, m := range stored {
		require.True(t, want[m.req.JobID], "unexpected job %s", m.req.JobID)
		require.Equal(t, m.req.JobID, m.msgID, "Nats-Msg-Id is the job id")
		require.Equal(t, "worker enqueue", m.req.RequestedBy)
		delete(want, m.req.JobID)
	}
	require.Empty(t, want, "every valid id stored once")

	// A rerun within the duplicate window stores nothing new.
	r = cli(t, "", withFlags(enqueueCmd, nats, "--file", path, "--json")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	s = parseEnqueueSummary(t, r)
	require.Zero(t, s.Published)
	require.EqualValues(t, n-3, s.Duplicates, "9897 from the acks + 100 repeats")
	require.EqualValues(t, n-3-100, env.Pending())
}

// Every input form yields the request the worker will read.
func TestEnqueueFormats(t *testing.T) {
	id1, id2, id3 := seqJobID("a", 1), seqJobID("b", 2), seqJobID("c", 3)
	type want struct {
		msgID, job, region, reason, requestedBy string
	}
	tests := []struct {
		name      string
		giveArgs  []string
		giveFile  string // written to a file and passed as --file
		giveStdin string // passed as --file -
		want      []want
	}{
		{
			name:     "arguments",
			giveArgs: []string{id1, id2, "--reason", "outage 2024-06-01"},
			want: []want{
				{id1, id1, "", "outage 2024-06-01", "worker enqueue"},
				{id2, id2, "", "outage 2024-06-01", "worker enqueue"},
			},
		},
		{
			name: "lines with comments, blanks, CRLF and JSON",
			giveFile: "# outage list\r\n\r\n  " + id1 + "  \r\n" +
				fmt.Sprintf(`{"job_id":%q,"region":"cn-east-3","reason":"own reason","requested_by":"ops"}`, id2) + "\r\n",
			giveArgs: []string{"--regions", "cn-east-3", "--reason", "default reason"},
			want: []want{
				{id1, id1, "", "default reason", "worker enqueue"},
				{id2, id2, "cn-east-3", "own reason", "ops"},
			},
		},
		{
			name: "csv with BOM, extra columns and quotes, auto-detected",
			giveFile: "\xef\xbb\xbfname, Job_ID ,region,reason\n" +
				`"build, nightly",` + id1 + ",,\n" +
				`x,` + id2 + `,cn-north-4,"said ""please"""` + "\n",
			want: []want{
				{id1, id1, "", "", "worker enqueue"},
				{id2, id2, "cn-north-4", `said "please"`, "worker enqueue"},
			},
		},
		{
			name:      "stdin",
			giveStdin: id3 + "\n" + id1 + "\n",
			giveArgs:  []string{"--requested-by", "alice"},
			want: []want{
				{id3, id3, "", "", "alice"},
				{id1, id1, "", "", "alice"},
			},
		},
		{
			name:     "dedup key none publishes repeats",
			giveArgs: []string{id1, id1, "--dedup-key", "none"},
			want: []want{
				{"", id1, "", "", "worker enqueue"},
				{"", id1, "", "", "worker enqueue"},
			},
		},
		{
			name:     "dedup key template",
			giveArgs: []string{"--dedup-key", "{{.JobID}}-{{.Region}}-retry2", "--regions", "cn-east-3"},
			giveFile: fmt.Sprintf(`{"job_id":%q,"region":"cn-east-3"}`, id1) + "\n" + id2 + "\n",
			want: []want{
				{id1 + "-cn-east-3-retry2", id1, "cn-east-3", "", "worker enqueue"},
				{id2 + "--retry2", id2, "", "", "worker enqueue"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, nats := toolEnv(t, testenv.Options{})
			a := withFlags(enqueueCmd, nats, tt.giveArgs...)
			if tt.giveFile != "" {
				a = append(a, "--file", writeTemp(t, "in", tt.giveFile))
			}
			if tt.giveStdin != "" {
				a = append(a, "--file", "-")
			}
			r := cli(t, tt.giveStdin, a...)
			require.Zero(t, r.code, r.err)
			var got []want
			for _, m := range storedRequests(t, env) {
				got = append(got, want{m.msgID, m.req.JobID, m.req.Region, m.req.Reason, m.req.RequestedBy})
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// The text summary is stable.
func TestEnqueueSummaryGolden(t *testing.T) {
	_, nats := toolEnv(t, testenv.Options{})
	file := writeTemp(t, "jobs.txt", strings.Join([]string{seqJobID("a", 1), seqJobID("a", 2), "bad", seqJobID("a", 1), seqJobID("a", 3)}, "\n"))
	r := cli(t, "", withFlags(enqueueCmd, nats, "--file", file, "--quiet")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	checkGolden(t, "enqueue_summary.golden", r.out)

	// -o yaml: the same summary as one YAML object (a fresh stream: the
	// ids above are now duplicates).
	r = cli(t, "", withFlags(enqueueCmd, nats, "--file", file, "--quiet", "-o", "yaml")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	checkGolden(t, "enqueue_summary.yaml.golden", r.out)
	require.Equal(t, "invalid line 3: invalid request: job_id \"bad\" is not 32 ASCII letters or digits\nworker: 1 invalid entries were not published\n", r.err)

	// --strict publishes nothing when anything is invalid.
	env2, nats2 := toolEnv(t, testenv.Options{})
	r = cli(t, "", withFlags(enqueueCmd, nats2, "--file", file, "--strict", "--json")...)
	require.Equal(t, exitInvalid, r.code)
	require.Zero(t, parseEnqueueSummary(t, r).Published)
	require.Zero(t, env2.Pending())
	require.Contains(t, r.err, "nothing published (--strict)")
}

// Ctrl-C stops publishing, every sent request is acknowledged, the summary
// says where to resume, and resuming there completes the set exactly.
func TestEnqueueInterrupted(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = seqJobID("d", i)
	}
	file := writeTemp(t, "jobs.txt", strings.Join(ids, "\n")+"\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan cliResult, 1)
	go func() {
		done <- cliContext(ctx, "", withFlags(enqueueCmd, nats, "--file", file, "--rate", "200", "--json")...)
	}()
	testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() >= 20 }, "first requests stored")
	cancel()
	r := <-done

	require.Equal(t, exitInterrupted, r.code, r.err)
	s := parseEnqueueSummary(t, r)
	require.True(t, s.Interrupted)
	require.Positive(t, s.NotSent)
	require.Zero(t, s.Failed)
	require.EqualValues(t, env.Pending(), s.Published, "every sent request acknowledged and counted")
	require.LessOrEqual(t, s.NotSent, 1, "only the entry in hand: the rest was never read")
	require.EqualValues(t, s.Read, s.Published+int64(s.NotSent))
	require.Equal(t, int(s.Published)+1, s.ResumeLine)
	require.Contains(t, r.err, fmt.Sprintf("--from-line %d", s.ResumeLine))

	r = cli(t, "", withFlags(enqueueCmd, nats, "--file", file, "--from-line", fmt.Sprint(s.ResumeLine), "--json")...)
	require.Zero(t, r.code, r.err)
	s2 := parseEnqueueSummary(t, r)
	require.Zero(t, s2.Duplicates, "resuming at the line repeats nothing")
	require.EqualValues(t, n-s.Published, s2.Published, "the rest")
	stored := storedRequests(t, env)
	require.Len(t, stored, n)
	for i, m := range stored {
		require.Equal(t, ids[i], m.req.JobID)
	}
}

// jobLines is an input of n distinct job ids, one per line, generated as
// it is read: it never exists whole, and it can be read only once (like a
// pipe), so a second pass fails the test. Every sampleEvery lines it
// records the live heap after a GC: what enqueue holds at that point.
type jobLines struct {
	t           *testing.T
	n, next     int
	buf         []byte
	eof         bool
	sampleEvery int
	peak        uint64 // the largest live heap sampled
}

func (s *jobLines) Read(p []byte) (int, error) {
	if s.eof {
		s.t.Error("the input was read again after its end")
		return 0, io.EOF
	}
	for len(s.buf) < len(p) && s.next < s.n {
		s.next++
		s.buf = append(s.buf, seqJobID("m", s.next)...)
		s.buf = append(s.buf, '\n')
		if s.sampleEvery > 0 && s.next%s.sampleEvery == 0 {
			runtime.GC()
			runtime.GC() // and what sync.Pools kept for one more cycle
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			s.peak = max(s.peak, ms.HeapAlloc)
		}
	}
	if len(s.buf) == 0 {
		s.eof = true
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	return n, nil
}

// enqueueLines publishes n generated lines from stdin and returns the peak
// live heap seen while they were read.
func enqueueLines(t *testing.T, n int) uint64 {
	t.Helper()
	env, nats := toolEnv(t, testenv.Options{})
	src := &jobLines{t: t, n: n, sampleEvery: 5000}
	var out, errb bytes.Buffer
	// No Nats-Msg-Id: the in-process server would keep every id of its
	// duplicate window, and that memory is not enqueue's.
	code := Main(withFlags(enqueueCmd, nats, "--file", "-", "--dedup-key", "none", "--json"), src, &out, &errb)
	require.Zero(t, code, errb.String())
	s := parseEnqueueSummary(t, cliResult{out: out.String(), err: errb.String()})
	require.Equal(t, n, s.Read)
	require.EqualValues(t, n, s.Published)
	require.EqualValues(t, n, env.Pending())
	return src.peak
}

// `worker enqueue` streams its input (issue 15 item 7): it reads it once,
// and what it holds does not grow with its length. Ten times the lines
// may not take twice the live heap (holding the input, as enqueue did,
// takes about 115 bytes a line: 4 MiB for 20,000 lines, 24 MiB for
// 200,000).
func TestEnqueueStreamsInput(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 220,000 requests")
	}
	var small, large uint64
	// Subtests: each NATS server stops before the next run.
	t.Run("20000", func(t *testing.T) { small = enqueueLines(t, 20_000) })
	t.Run("200000", func(t *testing.T) { large = enqueueLines(t, 200_000) })
	t.Logf("peak live heap: 20,000 lines %.1f MiB, 200,000 lines %.1f MiB", float64(small)/(1<<20), float64(large)/(1<<20))
	require.Less(t, large, 2*small, "the live heap grows with the input: 20,000 lines %d bytes, 200,000 lines %d bytes", small, large)
}

// Ctrl-C while stdin (a pipe) has no more to give stops at once: what was
// read is published and acknowledged, and the summary says where to resume.
func TestEnqueueInterruptedWaitingOnStdin(t *testing.T) {
	env, nats := toolEnv(t, testenv.Options{})
	r, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	// Closed before the leak check: the abandoned read then returns.
	t.Cleanup(func() { _ = w.Close() })
	_, err = io.WriteString(w, seqJobID("p", 1)+"\n\n"+seqJobID("p", 2)+"\n")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	root := newRoot(r, &out, &errb)
	root.SetArgs(withFlags(enqueueCmd, nats, "--file", "-", "--json"))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	testenv.Eventually(t, 30*time.Second, func() bool { return env.Pending() == 2 }, "the lines written so far published")
	cancel()
	err = <-done

	ee, ok := errors.AsType[*exitError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, exitInterrupted, ee.code)
	s := parseEnqueueSummary(t, cliResult{out: out.String(), err: errb.String()})
	require.True(t, s.Interrupted)
	require.EqualValues(t, 2, s.Published)
	require.Zero(t, s.NotSent)
	require.Equal(t, 4, s.ResumeLine, "after the last line read")
	require.Contains(t, err.Error(), "--from-line 4")
}

// --strict reads stdin twice (the first pass keeps it in a temporary
// file): nothing is published when a line is invalid, every line when none
// is.
func TestEnqueueStrictStdin(t *testing.T) {
	ids := []string{seqJobID("s", 1), seqJobID("s", 2), seqJobID("s", 3)}
	env, nats := toolEnv(t, testenv.Options{})
	r := cli(t, strings.Join(append(ids, "nope"), "\n"), withFlags(enqueueCmd, nats, "--file", "-", "--strict", "--json")...)
	require.Equal(t, exitInvalid, r.code, r.err)
	s := parseEnqueueSummary(t, r)
	require.Equal(t, enqueueSummary{Read: 4, Invalid: 1, NotSent: 3, InvalidLines: []lineError{{Line: 4, Error: `invalid request: job_id "nope" is not 32 ASCII letters or digits`}}}, s)
	require.Zero(t, env.Pending())

	r = cli(t, strings.Join(ids, "\n"), withFlags(enqueueCmd, nats, "--file", "-", "--strict", "--json")...)
	require.Zero(t, r.code, r.err)
	s = parseEnqueueSummary(t, r)
	require.Equal(t, enqueueSummary{Read: 3, Published: 3}, s)
	var got []string
	for _, m := range storedRequests(t, env) {
		got = append(got, m.req.JobID)
	}
	require.Equal(t, ids, got)
}
