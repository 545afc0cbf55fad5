package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

func newStatusCmd() *cobra.Command {
	var (
		nats    = defaultNATSOptions()
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the request stream, the workers' consumer and the dead letters",
		Long: `status shows where the requests are:
  request stream  messages and bytes stored (requests not yet finished)
  consumer        pending (not yet delivered), in flight (delivered, not yet
                  acknowledged), redelivered (in flight and delivered more
                  than once), waiting pulls (idle workers asking for more)
  dead letters    messages and bytes, and the count by reason (read from the
                  dead-letter stream)
  results         the result stream's count, when that stream exists
as a table or, with --json, one JSON object. A consumer that does not exist
yet (no worker has started) shows as absent (null).

` + natsFlagsHelp,
		Example: `  worker status
  worker status --json | jq .consumer.pending
  watch -n 5 worker status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := nats.connect(cmd, "result-stream")
			if err != nil {
				return err
			}
			defer closeConn(conn)
			rep, err := admin.CollectStatus(cmd.Context(), conn, nats.cfg.ResultStream)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return printStatus(cmd.OutOrStdout(), rep)
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	fs.StringVar(&nats.cfg.ResultStream, "result-stream", queue.DefaultResultStream, "stream of result events, shown when it exists")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

// printStatus writes the status table.
func printStatus(w io.Writer, r admin.Status) error {
	var b strings.Builder
	row := func(label string, n any, note string) {
		b.WriteString(strings.TrimRight(fmt.Sprintf("  %-18s %-10v %s", label, n, note), " ") + "\n")
	}
	s := r.Stream
	fmt.Fprintf(&b, "request stream %s (%s)\n", s.Name, strings.Join(s.Subjects, ", "))
	row("messages", s.Messages, "requests not finished yet")
	row("bytes", s.Bytes, "")
	if c := r.Consumer; c != nil {
		fmt.Fprintf(&b, "consumer %s\n", c.Name)
		row("pending", c.Pending, "not yet delivered")
		row("in flight", c.InFlight, "delivered, not yet acknowledged")
		row("redelivered", c.Redelivered, "in flight, delivered more than once")
		row("waiting pulls", c.WaitingPulls, "idle workers asking for more")
		if c.Paused {
			row("paused", "yes", "")
		}
	} else {
		b.WriteString("consumer absent (no worker has started yet)\n")
	}
	d := r.DLQ
	fmt.Fprintf(&b, "dead letters %s\n", d.Name)
	row("messages", d.Messages, "")
	row("bytes", d.Bytes, "")
	for _, reason := range sortedKeys(d.ByReason) {
		row(reason, d.ByReason[reason], "")
	}
	if res := r.Results; res != nil {
		fmt.Fprintf(&b, "results %s\n", res.Name)
		row("messages", res.Messages, "")
		row("bytes", res.Bytes, "")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
