package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// StreamDrift lists what `worker status` shows; --update-streams (and only
// it) makes the streams the worker's.
func TestStreamDriftAndUpdateStreams(t *testing.T) {
	ns := startServer(t, true, nil)
	c, _ := connectLogged(t, queue.Config{URL: ns.ClientURL()})
	operatorStreams(t, c.JS)
	ctx := context.Background()

	drift, err := c.StreamDrift(ctx)
	require.NoError(t, err)
	require.Equal(t, []queue.Drift{
		{Stream: "CODEARTS_RECOVER", Setting: "subjects", Have: "codearts.build.other", Want: "codearts.build.recover", Updatable: true},
		{Stream: "CODEARTS_RECOVER", Setting: "max_msgs", Have: "1000000", Want: "unlimited", Updatable: true},
		{Stream: "CODEARTS_RECOVER", Setting: "max_msg_size", Have: "unlimited", Want: "73728", Updatable: true},
		{Stream: "CODEARTS_RECOVER", Setting: "duplicate_window", Have: "10m", Want: "2m", Updatable: true},
		{Stream: "CODEARTS_RECOVER", Setting: "discard", Have: "old", Want: "new", Updatable: true},
		{Stream: "CODEARTS_RECOVER_DLQ", Setting: "max_age", Have: "2160h", Want: "336h", Updatable: true},
		{Stream: "CODEARTS_RECOVER_DLQ", Setting: "max_msg_size", Have: "unlimited", Want: "262144", Updatable: true},
	}, drift, "streams that do not exist yet are left out")

	// A plain start adds the subject only.
	require.NoError(t, c.Ensure(ctx))
	drift, err = c.StreamDrift(ctx)
	require.NoError(t, err)
	require.Len(t, drift, 6)
	require.Equal(t, 90*24*time.Hour, streamConfig(t, c.JS, queue.DefaultDLQStream).MaxAge)

	// Asked explicitly, the worker makes them its own, and says so.
	u, logs := connectLogged(t, queue.Config{URL: ns.ClientURL(), UpdateStreams: true})
	require.NoError(t, u.Ensure(ctx))
	drift, err = u.StreamDrift(ctx)
	require.NoError(t, err)
	require.Empty(t, drift)
	require.Equal(t, 14*24*time.Hour, streamConfig(t, c.JS, queue.DefaultDLQStream).MaxAge)
	require.Equal(t, 2*time.Minute, streamConfig(t, c.JS, queue.DefaultStream).Duplicates)
	require.Equal(t, 6, logs.FilterMessage("stream setting changed (--update-streams)").Len())
}

// The request stream's bound follows the decoder's (--max-body-bytes).
func TestRequestStreamBoundFollowsMaxBodyBytes(t *testing.T) {
	ns := startServer(t, true, nil)
	c, _ := connectLogged(t, queue.Config{URL: ns.ClientURL(), MaxBodyBytes: 1024})
	ctx := context.Background()
	require.NoError(t, c.Ensure(ctx))
	require.EqualValues(t, 1024+8<<10, streamConfig(t, c.JS, queue.DefaultStream).MaxMsgSize)
	_, err := c.Publish(ctx, queue.DefaultSubject, "", nil, make([]byte, 10<<10))
	require.ErrorContains(t, err, "message size exceeds maximum allowed")
}
