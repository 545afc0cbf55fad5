package main

import (
	"io"

	"github.com/spf13/cobra"
)

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "worker",
		Short: "Recover CodeArts Build jobs from a NATS JetStream queue",
		Long: `worker drains recover requests for Huawei Cloud CodeArts Build jobs from a NATS
JetStream subject and calls POST /v3/jobs/{job_id}/recover for each, retrying
transient failures, dead-lettering permanent ones, and acknowledging each
request only once it is finished.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newRunCmd(),
		newVersionCmd(),
		newEnqueueCmd(),
		newDiscoverCmd(),
		newReportCmd(),
		newDLQCmd(),
		newStatusCmd(),
		newDoctorCmd(),
	)
	root.AddCommand(demoCommands()...)

	markUsageErrors(root)
	registerCompletions(root)
	return root
}
