package buildinfo

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGet(t *testing.T) {
	tests := []struct {
		name        string
		giveVersion string
		giveCommit  string
		wantVersion string
		wantCommit  string
	}{
		{name: "explicit", giveVersion: "v1.2.3", giveCommit: "abc123", wantVersion: "v1.2.3", wantCommit: "abc123"},
		// A test binary has no module version and no VCS stamp.
		{name: "nothing known", giveVersion: "", wantVersion: "dev", wantCommit: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := Commit
			t.Cleanup(func() { Commit = old })
			Commit = tt.giveCommit
			got := Get(tt.giveVersion)
			require.Equal(t, tt.wantVersion, got.Version)
			require.Equal(t, tt.wantCommit, got.Commit)
			require.Equal(t, runtime.Version(), got.GoVersion)
		})
	}
}
