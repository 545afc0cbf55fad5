package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
)

// fixedValues are the flags whose values are a fixed set, completed by the
// shell (`worker completion bash|zsh|fish|powershell`, README "Shell
// completion"). under limits one to the commands whose path starts with it
// ("" = every command that has the flag): enqueue's --reason is free text.
// The first entry that matches a command's flag wins, so a command whose
// flag takes fewer values (dlq show -o: a record has no table) comes before
// the rule for every command. TestEveryFixedValueFlagCompletes finds a
// flag whose usage lists its values but that is missing here.
var fixedValues = []struct {
	under, flag string
	values      []string
}{
	{"worker dlq show", "output", []string{outputJSON, outputYAML}},
	{"", "output", outputFormats},
	{"", "log-format", []string{"json", "console"}},
	{"", "log-level", []string{"debug", "info", "warn", "error"}},
	{"", "rate-limit-scope", []string{"fleet", "process"}},
	{"worker enqueue", "format", []string{"auto", "lines", "csv"}},
	{"worker enqueue", "dedup-key", []string{"job_id", "none"}},
	{"worker dlq", "reason", admin.Reasons},
	{"worker simulate", "list-shape", []string{"sdk", "result"}},
}

// registerCompletions gives every command's fixed-value flags their
// completions; other flags complete as cobra does (files for paths).
func registerCompletions(cmd *cobra.Command) {
	done := map[string]bool{}
	for _, fv := range fixedValues {
		if done[fv.flag] || cmd.Flags().Lookup(fv.flag) == nil || !strings.HasPrefix(cmd.CommandPath(), fv.under) {
			continue
		}
		done[fv.flag] = true
		// Register fails only for a flag registered twice; done keeps each once.
		_ = cmd.RegisterFlagCompletionFunc(fv.flag, cobra.FixedCompletions(fv.values, cobra.ShellCompDirectiveNoFileComp))
	}
	for _, sub := range cmd.Commands() {
		registerCompletions(sub)
	}
}
