//go:build !nodemo

package main

import "github.com/spf13/cobra"

// demoCommands are the commands that run the demo pieces: an embedded NATS
// server and the simulated API. A build with -tags nodemo (the image)
// leaves them, and so nats-server and the simulator, out.
func demoCommands() []*cobra.Command {
	return []*cobra.Command{newDemoCmd(), newSimulateCmd()}
}
