package admin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

var t0 = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

func TestFilter(t *testing.T) {
	rec := func(reason string, status int, code string, hour int) *Record {
		return &Record{DeadLetter: worker.DeadLetter{JobID: "job-" + code, Reason: reason, StatusCode: status, ErrorCode: code, FailedAt: t0.Add(time.Duration(hour) * time.Hour)}}
	}
	unreadable := &Record{Unreadable: "not a dead-letter record"}
	tests := []struct {
		name      string
		give      Filter
		giveRec   *Record
		wantMatch bool
		wantErr   string
	}{
		{"empty selects all", Filter{}, rec("client_error", 404, "CB.00060214", 0), true, ""},
		{"empty selects unreadable", Filter{}, unreadable, true, ""},
		{"any filter skips unreadable", Filter{Reasons: []string{"client_error"}}, unreadable, false, ""},
		{"reason", Filter{Reasons: []string{"invalid_request"}}, rec("client_error", 404, "", 0), false, ""},
		{"status class", Filter{Statuses: []string{"4xx"}}, rec("client_error", 403, "x", 0), true, ""},
		{"no answer", Filter{Statuses: []string{"0"}}, rec("invalid_request", 0, "", 0), true, ""},
		{"error code any case", Filter{ErrorCodes: []string{"cb.00060214"}}, rec("client_error", 404, "CB.00060214", 0), true, ""},
		{"no error code", Filter{ErrorCodes: []string{""}}, rec("invalid_request", 0, "", 0), true, ""},
		{"no error code skips one with", Filter{ErrorCodes: []string{""}}, rec("client_error", 404, "CB.00060214", 0), false, ""},
		{"since inclusive", Filter{Since: "2024-06-01T02:00:00Z"}, rec("client_error", 404, "x", 2), true, ""},
		{"until exclusive", Filter{Until: "2024-06-01T02:00:00Z"}, rec("client_error", 404, "x", 2), false, ""},
		{"bad reason", Filter{Reasons: []string{"nope"}}, nil, false, `reason: "nope" is not one of`},
		{"bad status", Filter{Statuses: []string{"6xx"}}, nil, false, `status: "6xx" is not an HTTP status`},
		{"bad time", Filter{Since: "yesterday"}, nil, false, `since: "yesterday" is not a time`},
		{"since after until", Filter{Since: "2024-06-02", Until: "2024-06-01"}, nil, false, "since: must be before --until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.give
			err := f.Parse(t0.Add(24 * time.Hour))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantMatch, f.Match(tt.giveRec))
		})
	}
}

// publishLetters stores dead letters of the given error codes (404s, and
// invalid requests for ""), failing an hour apart.
func publishLetters(t *testing.T, env *testenv.Env, codes ...string) {
	t.Helper()
	ctx := context.Background()
	for i, code := range codes {
		d := worker.DeadLetter{
			JobID: fmt.Sprintf("%032d", i), Reason: worker.ReasonClientError, StatusCode: 404, ErrorCode: code, ErrorMsg: "gone " + code,
			FailedAt: t0.Add(time.Duration(i) * time.Hour),
			Original: worker.NewOriginal(queue.DefaultSubject, uint64(i+1), nil, fmt.Appendf(nil, "%032d", i)),
		}
		if code == "" {
			d.Reason, d.StatusCode, d.JobID = worker.ReasonInvalidRequest, 0, ""
		}
		data, err := d.Marshal()
		require.NoError(t, err)
		_, err = env.Conn.Publish(ctx, env.Conn.Config().DLQSubject, fmt.Sprintf("dl-%d-%s", i, code), nil, data)
		require.NoError(t, err)
	}
}

// A snapshot counts as CollectStatus does, groups by reason and error
// code (largest first, latest samples first), and rescans only when the
// dead letters changed and a rescan is due.
func TestSnapshot(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	publishLetters(t, env, "CB.1", "CB.2", "CB.1", "", "CB.1")
	_, err := env.Conn.Publish(ctx, env.Conn.Config().DLQSubject, "junk", nil, []byte("not json"))
	require.NoError(t, err)

	now := t0.Add(48 * time.Hour)
	cfg := SnapshotConfig{ResultStream: env.Conn.Config().ResultStream, Samples: 2, RescanEvery: time.Minute, Now: func() time.Time { return now }}
	snap, err := TakeSnapshot(ctx, env.Conn, cfg, nil)
	require.NoError(t, err)
	st, err := CollectStatus(ctx, env.Conn, cfg.ResultStream)
	require.NoError(t, err)
	require.Equal(t, st, snap.Status, "the figures of `worker status`")
	require.Equal(t, map[string]int{"client_error": 4, "invalid_request": 1, Unreadable: 1}, snap.Status.DLQ.ByReason)
	require.EqualValues(t, 6, snap.DLQLastSeq)
	require.Len(t, snap.Groups, 4)
	g := snap.Groups[0]
	require.Equal(t, "client_error", g.Reason)
	require.Equal(t, "CB.1", g.ErrorCode)
	require.Equal(t, 3, g.Count)
	require.Equal(t, map[string]int{"404": 3}, g.Statuses)
	require.Equal(t, t0, g.FirstFailedAt)
	require.Equal(t, t0.Add(4*time.Hour), g.LastFailedAt)
	require.Equal(t, []uint64{5, 3}, []uint64{g.Samples[0].Seq, g.Samples[1].Seq}, "the latest two, newest first")
	require.Equal(t, []string{"CB.2/client_error", "/invalid_request", "/unreadable"},
		[]string{snap.Groups[1].ErrorCode + "/" + snap.Groups[1].Reason, snap.Groups[2].ErrorCode + "/" + snap.Groups[2].Reason, snap.Groups[3].ErrorCode + "/" + snap.Groups[3].Reason})

	// Unchanged: reused as is.
	again, err := TakeSnapshot(ctx, env.Conn, cfg, snap)
	require.NoError(t, err)
	require.Equal(t, snap.Groups, again.Groups)
	require.False(t, again.Stale)

	// Changed, but a rescan is not due yet: the old groups, marked stale;
	// once due, rescanned.
	publishLetters(t, env, "CB.2")
	later, err := TakeSnapshot(ctx, env.Conn, cfg, again)
	require.NoError(t, err)
	require.True(t, later.Stale)
	require.Equal(t, 4, later.Status.DLQ.ByReason["client_error"])
	require.EqualValues(t, 7, later.Status.DLQ.Messages)
	now = now.Add(time.Minute)
	fresh, err := TakeSnapshot(ctx, env.Conn, cfg, later)
	require.NoError(t, err)
	require.False(t, fresh.Stale)
	require.Equal(t, 5, fresh.Status.DLQ.ByReason["client_error"])
	require.Equal(t, 2, fresh.Groups[1].Count)

	// Unchanged and a rescan due: still not rescanned.
	now = now.Add(time.Hour)
	idle, err := TakeSnapshot(ctx, env.Conn, cfg, fresh)
	require.NoError(t, err)
	require.Equal(t, fresh.ScannedAt, idle.ScannedAt, "no scan of an unchanged stream")
	require.Equal(t, fresh.Groups, idle.Groups)
	require.False(t, idle.Stale)
}

// Streams.Replay replays the chosen group up to the sequence the page saw,
// and removes only those dead letters.
func TestStreamsReplay(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	publishLetters(t, env, "CB.1", "CB.2", "CB.1", "CB.1")
	s := &Streams{Conn: env.Conn}
	var selected, done int
	sum, err := s.Replay(ctx, Filter{Reasons: []string{"client_error"}, ErrorCodes: []string{"CB.1"}}, ReplayBounds{UpTo: 3},
		func(n int) { selected = n }, func(n int) { done = n })
	require.NoError(t, err)
	require.Equal(t, ReplaySummary{Matched: 2, Replayed: 2}, sum)
	require.Equal(t, 2, selected)
	require.Equal(t, 2, done)
	require.EqualValues(t, 2, env.Pending(), "two requests back in the request stream")
	left, err := Select(ctx, env.Conn, &Filter{}, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{2, 4}, left, "the CB.2 letter and the CB.1 letter stored after the page's view stay")

	_, err = s.Replay(ctx, Filter{}, ReplayBounds{}, nil, nil)
	require.ErrorContains(t, err, "a filter is required")
}

// ReplayBounds.Max replays the oldest of the group; the rest wait for the
// next replay.
func TestStreamsReplayMax(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	publishLetters(t, env, "CB.1", "CB.1", "CB.1")
	s := &Streams{Conn: env.Conn}
	var selected int
	sum, err := s.Replay(ctx, Filter{Reasons: []string{"client_error"}}, ReplayBounds{Max: 2, Rate: 1000}, func(n int) { selected = n }, nil)
	require.NoError(t, err)
	require.Equal(t, ReplaySummary{Matched: 2, Replayed: 2}, sum)
	require.Equal(t, 2, selected)
	left, err := Select(ctx, env.Conn, &Filter{}, 0)
	require.NoError(t, err)
	require.Equal(t, []uint64{3}, left)
}

// A replay joins the request's trace: a dead letter whose trace was derived
// (no producer traceparent) gets a traceparent whose parent is the span
// that dead-lettered it; a producer's traceparent is kept as it was.
func TestReplayContinuesTrace(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	const (
		derivedTrace = "0af7651916cd43dd8448eb211c80319c"
		derivedSpan  = "b7ad6b7169203331"
		producerTP   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	letters := []worker.DeadLetter{
		{
			JobID: fmt.Sprintf("%032d", 1), Reason: worker.ReasonClientError, StatusCode: 404, ErrorCode: "CB.1",
			TraceID: derivedTrace, SpanID: derivedSpan,
			Original: worker.NewOriginal(queue.DefaultSubject, 1, nil, fmt.Appendf(nil, "%032d", 1)),
		},
		{
			JobID: fmt.Sprintf("%032d", 2), Reason: worker.ReasonClientError, StatusCode: 404, ErrorCode: "CB.1",
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "1111111111111111",
			Original: worker.NewOriginal(queue.DefaultSubject, 2, map[string][]string{"traceparent": {producerTP}}, fmt.Appendf(nil, "%032d", 2)),
		},
	}
	for i, d := range letters {
		data, err := d.Marshal()
		require.NoError(t, err)
		_, err = env.Conn.Publish(ctx, env.Conn.Config().DLQSubject, fmt.Sprint("dl-", i), nil, data)
		require.NoError(t, err)
	}
	s := &Streams{Conn: env.Conn}
	sum, err := s.Replay(ctx, Filter{Reasons: []string{"client_error"}}, ReplayBounds{UpTo: 2}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, 2, sum.Replayed)

	reqs, err := env.Conn.Stream(ctx, env.Conn.Config().Stream)
	require.NoError(t, err)
	first, err := reqs.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"00-" + derivedTrace + "-" + derivedSpan + "-01"}, first.Header["traceparent"])
	second, err := reqs.GetMsg(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []string{producerTP}, second.Header["traceparent"])
}
