package main

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTuneGCKeepsOperatorsGOGC(t *testing.T) {
	tests := []struct {
		name        string
		giveGOGC    string // "" = unset
		wantPercent int
	}{
		{name: "unset: the worker's default", wantPercent: defaultGCPercent},
		{name: "set: the operator's value stays", giveGOGC: "150", wantPercent: 77},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.giveGOGC)
			if tt.giveGOGC == "" {
				require.NoError(t, os.Unsetenv("GOGC"))
			}
			// 77 stands for "whatever the runtime read from GOGC": the
			// runtime parsed it at start, so a test can only tell whether
			// tuneGC changed it.
			prev := debug.SetGCPercent(77)
			t.Cleanup(func() { debug.SetGCPercent(prev) })
			tuneGC()
			require.Equal(t, tt.wantPercent, debug.SetGCPercent(77))
		})
	}
}
