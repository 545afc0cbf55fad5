package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Of many replicas claiming one request's outcome at once, exactly one wins
// and every other gets the winner's value back; a second request is apart.
// The bucket outlives the records it guards and keeps one value per key.
func TestOutcomeClaimFirstWriterWins(t *testing.T) {
	c := adminConn(t)
	ctx := context.Background()
	o, err := c.Outcomes(ctx)
	require.NoError(t, err)

	_, ok, err := o.Claimed(ctx, "7-1700000000000000001")
	require.NoError(t, err)
	require.False(t, ok, "no claim yet")

	const replicas = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []string
		got  = map[string]int{}
	)
	for i := range replicas {
		wg.Go(func() {
			mine := fmt.Sprintf(`{"outcome":"recovered","by":%d}`, i)
			held, won, err := o.Claim(ctx, "7-1700000000000000001", []byte(mine))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if won {
				wins = append(wins, string(held))
			}
			got[string(held)]++
		})
	}
	wg.Wait()
	require.Len(t, wins, 1, "one winner")
	require.Equal(t, map[string]int{wins[0]: replicas}, got, "everyone holds the winner's value")

	v, ok, err := o.Claimed(ctx, "7-1700000000000000001")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, wins[0], string(v))

	_, won, err := o.Claim(ctx, "8-1700000000000000002", []byte(`{"outcome":"dead_lettered"}`))
	require.NoError(t, err)
	require.True(t, won, "another request's claim is its own")

	st, err := c.JS.Stream(ctx, "KV_"+c.Config().OutcomeBucketName())
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	require.Equal(t, "KV_CODEARTS_RECOVER_OUTCOMES", cfg.Name)
	require.Equal(t, 14*24*time.Hour, cfg.MaxAge, "as long as the dead letters are kept")
	require.Equal(t, jetstream.FileStorage, cfg.Storage)
	require.Equal(t, int64(1), cfg.MaxMsgsPerSubject)
}

// An outcome bucket an operator made keeps its settings; with --no-create
// a missing one is an error naming it.
func TestOutcomeBucketKeptOrRequired(t *testing.T) {
	c := adminConn(t)
	ctx := context.Background()
	_, err := c.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "CODEARTS_RECOVER_OUTCOMES", TTL: 90 * 24 * time.Hour})
	require.NoError(t, err)
	_, err = c.Outcomes(ctx)
	require.NoError(t, err)
	st, err := c.JS.Stream(ctx, "KV_CODEARTS_RECOVER_OUTCOMES")
	require.NoError(t, err)
	require.Equal(t, 90*24*time.Hour, st.CachedInfo().Config.MaxAge, "the operator's max age stays")

	require.NoError(t, c.JS.DeleteKeyValue(ctx, "CODEARTS_RECOVER_OUTCOMES"))
	nc, err := queue.Connect(ctx, queue.Config{URL: c.Config().URL, NoCreate: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close(time.Second) })
	_, err = nc.Outcomes(ctx)
	require.ErrorContains(t, err, "outcome bucket CODEARTS_RECOVER_OUTCOMES")
}
