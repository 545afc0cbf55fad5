package wire_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// A pool joins one fleet per allowed region before it returns: each region's
// KV key counts this replica, and each region's limiter paces to its share of
// that region's cap.
func TestNewPoolJoinsEveryRegionsFleet(t *testing.T) {
	env := testenv.New(t, testenv.Options{API: codearts.Config{Regions: []string{"ap-southeast-1", "cn-south-1"}}})
	p := env.Pool(nil, worker.Config{Name: "joiner"}, wire.PoolOptions{Rate: 90})

	kv, err := env.Conn.JS.KeyValue(context.Background(), env.Queue.WithDefaults().Stream+"_RATE")
	require.NoError(t, err)
	for _, key := range []string{"fleet", "fleet.ap-southeast-1", "fleet.cn-south-1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, err := kv.Get(ctx, key)
		cancel()
		require.NoError(t, err, "key %s", key)
		var st struct {
			Replicas map[string]json.RawMessage `json:"replicas"`
		}
		require.NoError(t, json.Unmarshal(e.Value(), &st))
		require.Len(t, st.Replicas, 1, "key %s", key)
		for name := range st.Replicas {
			require.True(t, strings.HasPrefix(name, "joiner-"), "key %s counts %s", key, name)
		}
	}
	for _, region := range []string{"", "ap-southeast-1", "cn-south-1"} {
		require.InDelta(t, 90, p.Limiters.Region(region).Rate(), 1e-9, "region %q paces to its fleet's share", region)
	}
}
