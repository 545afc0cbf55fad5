package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// completions runs the shell's completion request (what the scripts of
// `worker completion SHELL` call) and returns the candidates.
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	r := cli(t, "", append([]string{"__complete"}, args...)...)
	require.Zero(t, r.code, r.err)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if strings.HasPrefix(line, ":") {
			break // the directive
		}
		name, _, _ := strings.Cut(line, "\t")
		out = append(out, name)
	}
	return out
}

func TestShellCompletion(t *testing.T) {
	tests := []struct {
		give []string
		want []string
	}{
		{give: []string{""}, want: []string{"completion", "demo", "discover", "dlq", "doctor", "enqueue", "help", "report", "run", "simulate", "status", "version"}},
		{give: []string{"dlq", ""}, want: []string{"list", "purge", "replay", "show"}},
		{give: []string{"doctor", "-o", ""}, want: []string{"table", "json", "yaml"}},
		{give: []string{"status", "--output", ""}, want: []string{"table", "json", "yaml"}},
		{give: []string{"run", "--log-format", ""}, want: []string{"json", "console"}},
		{give: []string{"run", "--log-level", ""}, want: []string{"debug", "info", "warn", "error"}},
		{give: []string{"run", "--rate-limit-scope", ""}, want: []string{"fleet", "process"}},
		{give: []string{"enqueue", "--format", ""}, want: []string{"auto", "lines", "csv"}},
		{give: []string{"dlq", "list", "--reason", ""}, want: []string{"client_error", "invalid_request", "retries_exhausted", "max_deliveries", "not_recovered"}},
		{give: []string{"dlq", "replay", "--reason", "cl"}, want: []string{"client_error"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			got := completions(t, tt.give...)
			if tt.give[len(tt.give)-1] == "cl" {
				// cobra leaves prefix filtering to the shell for fixed values.
				got = filterPrefix(got, "cl")
			}
			require.Equal(t, tt.want, got)
		})
	}
	// Free-text flags complete nothing of the fixed sets.
	require.Empty(t, completions(t, "enqueue", "--reason", ""))

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := cli(t, "", "completion", shell)
		require.Zero(t, r.code, r.err)
		require.Contains(t, r.out, "worker", shell)
	}
}

func filterPrefix(in []string, prefix string) []string {
	var out []string
	for _, s := range in {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
