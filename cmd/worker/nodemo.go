//go:build nodemo

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// demoCommands, in a build without the demo pieces (the image), are stubs
// that say where the demo is.
func demoCommands() []*cobra.Command {
	stub := func(name, short string) *cobra.Command {
		return &cobra.Command{
			Use: name, Short: short + " (not in this build)", Hidden: true,
			DisableFlagParsing: true,
			RunE: func(*cobra.Command, []string) error {
				return fmt.Errorf("%s is not part of this build: the production binary leaves out the embedded NATS server and the simulated API; run 'make demo' (or 'go run ./cmd/worker %s') from the source", name, name)
			},
		}
	}
	return []*cobra.Command{
		stub("demo", "Run the whole system on this machine"),
		stub("simulate", "Serve the simulated CodeArts API"),
	}
}
