package main

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
		{give: []string{"dlq", "show", "-o", ""}, want: []string{"json", "yaml"}},
		{give: []string{"dlq", "list", "-o", ""}, want: []string{"table", "json", "yaml"}},
		{give: []string{"simulate", "--list-shape", ""}, want: []string{"sdk", "result"}},
		{give: []string{"enqueue", "--dedup-key", ""}, want: []string{"job_id", "none"}},
		{give: []string{"demo", "-o", ""}, want: []string{"table", "json", "yaml"}},
		{give: []string{"version", "-o", ""}, want: []string{"table", "json", "yaml"}},
		{give: []string{"doctor", "--log-level", ""}, want: []string{"debug", "info", "warn", "error"}},
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

// listedValues matches a usage that lists a flag's values: "json or
// console", "debug, info, warn or error", "output format: table, json,
// yaml", "shape of …: sdk ({...}) or result (...)": bare lowercase words,
// perhaps each followed by a parenthesis, after an optional "label: ".
var listedValues = regexp.MustCompile(`^(?:[^:]*: )?[a-z_]+(?: \([^)]*\))?(?:(?:,| or|, or) [a-z_]+(?: \([^)]*\))?)+(?:[,;: ]|$)`)

// Every flag of every command whose usage lists a fixed set of values
// completes them: a flag added to any command (discover, report, …) with a
// usage like "table, json or csv" fails here until fixedValues has it.
func TestEveryFixedValueFlagCompletes(t *testing.T) {
	root := newRoot(strings.NewReader(""), io.Discard, io.Discard)
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() != "string" || !listedValues.MatchString(f.Usage) {
				return
			}
			checked++
			args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "worker")), "--"+f.Name, "")
			got := completions(t, args...)
			require.NotEmpty(t, got, "%s --%s (%q) lists its values but completes none: add it to fixedValues", c.CommandPath(), f.Name, f.Usage)
			if f.DefValue != "" {
				require.Contains(t, got, f.DefValue, "%s --%s: the default is one of the completions", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	require.Greater(t, checked, 10, "the usage pattern finds the fixed-value flags")

	// The pattern itself: what it must and must not take for a list.
	for usage, want := range map[string]bool{
		"json or console":                  true,
		"debug, info, warn or error":       true,
		"output format: table, json, yaml": true,
		`shape of GET /v3/{project_id}/jobs: sdk ({"jobs":…}, pages from 1) or result ({"result":{"job_list":…}}, pages from 0)`: true,
		"file format: auto, lines (ids or JSON lines) or csv":                                                                    true,
		"with --enqueue: the requests' reason (max 256 characters)":                                                              false,
		"API region (with --enqueue also the requests' worker default region)":                                                   false,
		"fleet: --rate-limit is shared by all replicas through NATS KV; process: per replica":                                    false,
	} {
		require.Equal(t, want, listedValues.MatchString(usage), usage)
	}
}
