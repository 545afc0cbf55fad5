package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…" (make
// build, the Dockerfile and .goreleaser.yaml stamp it).
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

// versionInfo is `worker version -o json|yaml`.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func newVersionCmd() *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Long: `version prints the release version, the VCS commit, the Go version and the
platform, as one line or, with -o json|yaml, one object.`,
		Example: `  worker version
  worker version -o json | jq -r .version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := out.resolve()
			if err != nil {
				return err
			}
			bi := buildinfo.Get(buildVersion())
			v := versionInfo{Version: bi.Version, Commit: orUnknown(bi.Commit), Modified: bi.Modified,
				GoVersion: bi.GoVersion, OS: runtime.GOOS, Arch: runtime.GOARCH}
			if format != outputTable {
				return writeStructured(cmd.OutOrStdout(), format, v)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "worker %s (commit %s) %s %s/%s\n", v.Version, v.Commit, v.GoVersion, v.OS, v.Arch)
			return err
		},
	}
	addOutputFlags(cmd, &out)
	return cmd
}
