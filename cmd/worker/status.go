package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

func newStatusCmd() *cobra.Command {
	var (
		nats = defaultNATSOptions()
		out  outputFlags
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
  stream settings each setting in which an existing stream differs from what
                  'worker run' would create with the same --replicas,
                  --dlq-max-age, --result-max-age, --duplicate-window and
                  --max-body-bytes (the worker keeps them; 'worker run
                  --update-streams' changes those NATS can change in place)
as a table or, with -o json|yaml (--json), one object. A consumer that does not exist
yet (no worker has started) shows as absent (null).

` + natsFlagsHelp,
		Example: `  worker status
  worker status -o json | jq .consumer.pending
  watch -n 5 worker status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := out.resolve()
			if err != nil {
				return err
			}
			conn, err := nats.connect(cmd, append([]string{"result-stream"}, streamSettingFlags...)...)
			if err != nil {
				return err
			}
			defer closeConn(conn)
			rep, err := admin.CollectStatus(cmd.Context(), conn, nats.cfg.ResultStream)
			if err != nil {
				return err
			}
			// Best effort: a user who may read the figures but not every
			// stream's settings still gets the figures.
			drift, err := conn.StreamDrift(cmd.Context())
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "worker: stream settings not compared: %v\n", err)
			}
			if format != outputTable {
				return writeStructured(cmd.OutOrStdout(), format, statusJSON{Status: rep, Drift: append([]queue.Drift{}, drift...)})
			}
			return printStatus(cmd.OutOrStdout(), rep, drift)
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	fs.StringVar(&nats.cfg.ResultStream, "result-stream", queue.DefaultResultStream, "stream of result events, shown when it exists")
	addOutputFlags(cmd, &out)
	// The settings `worker run` creates streams with, to compare them.
	d := queue.Config{}.WithDefaults()
	fs.IntVar(&nats.cfg.Replicas, "replicas", d.Replicas, "as given to 'worker run': replicas of the streams it creates")
	fs.DurationVar(&nats.cfg.DLQMaxAge, "dlq-max-age", d.DLQMaxAge, "as given to 'worker run': how long dead letters are kept")
	fs.DurationVar(&nats.cfg.ResultMaxAge, "result-max-age", d.ResultMaxAge, "as given to 'worker run': how long result events are kept")
	fs.DurationVar(&nats.cfg.DuplicateWindow, "duplicate-window", d.DuplicateWindow, "as given to 'worker run': the request stream's Nats-Msg-Id window")
	fs.IntVar(&nats.cfg.MaxBodyBytes, "max-body-bytes", d.MaxBodyBytes, "as given to 'worker run': the largest accepted request body")
	return cmd
}

// streamSettingFlags are the run flags that shape the streams the worker
// creates; status reads them (and their RECOVER_* variables) as run does.
var streamSettingFlags = []string{"replicas", "dlq-max-age", "result-max-age", "duplicate-window", "max-body-bytes"}

// statusJSON is status --json: the figures and the stream settings that
// differ from the worker's ([] when none).
type statusJSON struct {
	admin.Status
	Drift []queue.Drift `json:"drift"`
}

// printStatus writes the status table, then the stream settings that differ
// from the worker's, if any.
func printStatus(w io.Writer, r admin.Status, drift []queue.Drift) error {
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
	if len(drift) > 0 {
		b.WriteString("stream settings that differ from what the worker would create (kept; 'worker run --update-streams' changes them)\n")
		for _, d := range drift {
			note := "the worker: " + d.Want
			switch {
			case d.Setting == "subjects":
				note = "the worker adds " + d.Want + " at start"
			case !d.Updatable:
				note += " (NATS cannot change it in place)"
			}
			b.WriteString(strings.TrimRight(fmt.Sprintf("  %-28s %-20s %-10s %s", d.Stream, d.Setting, d.Have, note), " ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// sortedKeys is m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
