// Command worker drains CodeArts Build recover requests from NATS JetStream
// and calls the recover API for each. See `worker --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	tuneGC()
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes, the same for every command (README "Command-line conventions"): 0 success
// (and a graceful stop on SIGTERM/SIGINT), 1 an error or a check that
// failed (doctor, demo with lost requests), 2 a command line that could not
// be understood (unknown command or flag, a flag value that does not parse,
// wrong arguments).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitError carries a specific exit code (e.g. demo with lost requests).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit code. Data goes to
// stdout; progress, logs and errors go to stderr.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal the default handling returns: a second
	// Ctrl-C kills a drain that takes too long.
	context.AfterFunc(ctx, stop)
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "worker: %v\n", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		if strings.HasPrefix(err.Error(), "unknown command ") {
			fmt.Fprintln(stderr, "Run 'worker --help' for the commands.")
			return exitUsage
		}
		return exitFailure
	}
	return exitOK
}

// markUsageErrors makes flag parsing and argument errors of cmd and its
// subcommands usage errors (exit 2).
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}
