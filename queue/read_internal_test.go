package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// A Scan reads a stream to the last sequence it held when the scan began,
// or says it could not: an empty fetch (a slow or electing server) never
// ends it silently after part of the stream (issue 15 item 6), and a
// remainder deleted meanwhile ends it without an error. Not parallel: it
// sets the fetch wait.
func TestScanReadsToTheEndOrSaysSo(t *testing.T) {
	c, ctx := embeddedConn(t)
	const n = 700
	s, err := c.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "SCAN", Subjects: []string{"scan.>"}})
	require.NoError(t, err)
	for i := range n {
		_, err := c.JS.Publish(ctx, fmt.Sprintf("scan.%d", i), []byte("x"))
		require.NoError(t, err)
	}
	count := func(fn func(StoredMsg)) (int, error) {
		got := 0
		err := c.Scan(ctx, "SCAN", func(m StoredMsg) error {
			got++
			if fn != nil {
				fn(m)
			}
			return nil
		})
		return got, err
	}

	got, err := count(nil)
	require.NoError(t, err)
	require.Equal(t, n, got, "a scan reads the whole stream")

	// Every fetch comes back empty, as from a server too slow to answer
	// within the wait: the scan says it is incomplete.
	defer func(w time.Duration) { scanWait = w }(scanWait)
	scanWait = time.Nanosecond
	got, err = count(nil)
	require.ErrorIs(t, err, ErrIncomplete, "read %d of %d and returned no error", got, n)
	require.Less(t, got, n)
	require.Contains(t, err.Error(), fmt.Sprintf("of %d", n))
	scanWait = 2 * time.Second

	// The rest deleted while the scan runs: it ends without an error.
	got, err = count(func(m StoredMsg) {
		if m.Seq == 1 {
			for seq := uint64(2); seq <= n; seq++ {
				require.NoError(t, s.DeleteMsg(ctx, seq))
			}
		}
	})
	require.NoError(t, err)
	require.Less(t, got, n)
}
