package producer_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
)

func TestRecordCampaignAddsUpRuns(t *testing.T) {
	c, b := setup(t, producer.Config{})
	ctx := t.Context()
	_, err := producer.ReadCampaign(ctx, b.conn.JS, producer.DefaultStream, "outage-42")
	require.ErrorIs(t, err, producer.ErrNoCampaign, "no bucket yet")

	start, err := c.StartCampaign(ctx, "outage-42")
	require.NoError(t, err)
	require.Equal(t, int64(0), start.Size)
	require.Equal(t, 1, start.Runs)

	// Two runs adding at once: compare-and-set keeps both.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			_, err := c.AddToCampaign(ctx, "outage-42", 1500)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	got, err := producer.ReadCampaign(ctx, b.conn.JS, producer.DefaultStream, "outage-42")
	require.NoError(t, err)
	require.Equal(t, int64(3000), got.Size)
	require.Equal(t, start.StartedAt, got.StartedAt, "the start is the first run's")
	require.False(t, got.UpdatedAt.Before(got.StartedAt))

	_, err = producer.ReadCampaign(ctx, b.conn.JS, producer.DefaultStream, "other")
	require.ErrorIs(t, err, producer.ErrNoCampaign)
	for _, bad := range []string{"", "a b", "a..b", ".a", "a*"} {
		_, err = c.StartCampaign(ctx, bad)
		require.ErrorContains(t, err, "campaign", bad)
	}
}
