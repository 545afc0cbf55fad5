package queue

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A fleet-wide pause lasts its lease on the server's clock whatever the
// clock of the replica that asks for it says: one an hour ahead must not
// pause the fleet for an hour more, one an hour behind must still pause it.
// Not parallel: it skews the package's clock.
func TestPauseLeaseOnTheServersClock(t *testing.T) {
	c, ctx := embeddedConn(t)
	require.NoError(t, c.Ensure(ctx))

	const lease = 2 * time.Minute
	defer func(f func() time.Time) { clock = f }(clock)
	for _, skew := range []time.Duration{time.Hour, -time.Hour, 0} {
		clock = func() time.Time { return time.Now().Add(skew) }
		require.NoError(t, c.PauseConsumer(ctx, clock().Add(lease)), "skew %v", skew)
		cons, err := c.JS.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer)
		require.NoError(t, err)
		info := cons.CachedInfo()
		require.True(t, info.Paused, "a replica %v off paused nothing", skew)
		left := info.PauseRemaining
		require.InDelta(t, lease.Seconds(), left.Seconds(), 10, "a replica %v off paused the fleet for %v", skew, left)
		require.NoError(t, c.ResumeConsumer(ctx))
	}
}

// Pending counts the requests the consumer has yet to deliver to anyone:
// those delivered and not yet acked are not in it (a lone 403 waits while
// more may come).
func TestPendingCountsUndelivered(t *testing.T) {
	c, ctx := embeddedConn(t)
	require.NoError(t, c.Ensure(ctx))
	for i := range 3 {
		_, err := c.Publish(ctx, c.cfg.Subject, fmt.Sprint(i), nil, []byte("cb5fa20de5fd4cf8be681d4bd6fdd2f6"))
		require.NoError(t, err)
	}
	// The server counts a stored message into a consumer's pending a moment
	// after the publish ack.
	pending := func(want uint64) func() bool {
		return func() bool {
			n, err := c.Pending(ctx)
			require.NoError(t, err)
			return n == want
		}
	}
	require.Eventually(t, pending(3), 10*time.Second, 10*time.Millisecond, "3 pending")

	cons, err := c.Consumer(ctx)
	require.NoError(t, err)
	b, err := cons.Fetch(ctx, 2)
	require.NoError(t, err)
	got := 0
	for range b.Messages() {
		got++
		if got == 2 {
			break
		}
	}
	require.Equal(t, 2, got)
	require.Eventually(t, pending(1), 10*time.Second, 10*time.Millisecond, "delivered, not acked: not pending")
}
