// Package buildinfo says which build of the worker is running: version,
// VCS commit and Go version, for `worker version`, the startup log line and
// the codearts_recover_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Commit is the VCS revision, set at build time where the Go toolchain
// cannot read it itself (a container build without .git):
//
//	-ldflags "-X github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo.Commit=$(git rev-parse HEAD)"
//
// Empty means: take it from the binary's embedded VCS information.
var Commit = ""

// Info identifies a build.
type Info struct {
	// Version is the release version ("v1.2.3", a git describe, or "dev").
	Version string
	// Commit is the VCS revision, "unknown" when nothing recorded it.
	Commit string
	// Modified reports a build from a work tree with uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns the running build's Info. version is the release version the
// caller knows (from its own -ldflags); "" or "dev" falls back to the main
// module's version when `go install` recorded one.
func Get(version string) Info {
	info := Info{Version: version, Commit: Commit, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if (info.Version == "" || info.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
