package queue

import (
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
