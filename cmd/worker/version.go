package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	return v
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi := buildinfo.Get(buildVersion())
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "worker %s (commit %s) %s %s/%s\n", bi.Version, orUnknown(bi.Commit), bi.GoVersion, runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
