package admin

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
)

// A purge deletes what its plan named when the operator confirmed it: dead
// letters that arrive between the plan and the purge are kept, with a
// filter and without.
func TestPurgeKeepsWhatArrivesAfterThePlan(t *testing.T) {
	tests := []struct {
		name      string
		give      Filter
		wantCount int
		wantLeft  uint64
	}{
		{name: "everything", wantCount: 3, wantLeft: 2},
		{name: "one error code", give: Filter{ErrorCodes: []string{"CB.1"}}, wantCount: 2, wantLeft: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.New(t, testenv.Options{})
			ctx := context.Background()
			publishLetters(t, env, "CB.1", "CB.2", "CB.1")
			f := tt.give
			require.NoError(t, f.Parse(t0))
			plan, err := PlanPurge(ctx, env.Conn, &f)
			require.NoError(t, err)
			require.Equal(t, tt.wantCount, plan.Count)

			publishLetters(t, env, "CB.3", "CB.1") // two more after the plan (new message ids)
			purged, err := Purge(ctx, plan)
			require.NoError(t, err)
			require.Equal(t, tt.wantCount, purged)
			require.Equal(t, tt.wantLeft, env.DLQCount())
		})
	}
}
