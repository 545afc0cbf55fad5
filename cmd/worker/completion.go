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
var fixedValues = []struct {
	under, flag string
	values      []string
}{
	{"", "output", outputFormats},
	{"", "log-format", []string{"json", "console"}},
	{"", "log-level", []string{"debug", "info", "warn", "error"}},
	{"", "rate-limit-scope", []string{"fleet", "process"}},
	{"worker enqueue", "format", []string{"auto", "lines", "csv"}},
	{"worker enqueue", "dedup-key", []string{"job_id", "none"}},
	{"worker dlq", "reason", admin.Reasons},
}

// registerCompletions gives every command's fixed-value flags their
// completions; other flags complete as cobra does (files for paths).
func registerCompletions(cmd *cobra.Command) {
	for _, fv := range fixedValues {
		if cmd.Flags().Lookup(fv.flag) == nil || !strings.HasPrefix(cmd.CommandPath(), fv.under) {
			continue
		}
		// Register fails only for a flag registered twice; each is once here.
		_ = cmd.RegisterFlagCompletionFunc(fv.flag, cobra.FixedCompletions(fv.values, cobra.ShellCompDirectiveNoFileComp))
	}
	for _, sub := range cmd.Commands() {
		registerCompletions(sub)
	}
}
