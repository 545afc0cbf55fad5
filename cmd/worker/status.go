package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// statusReport is what status shows; its JSON is stable for scripts.
type statusReport struct {
	Stream   streamStatus    `json:"stream"`
	Consumer *consumerStatus `json:"consumer"`
	DLQ      dlqStatus       `json:"dlq"`
	Results  *resultsStatus  `json:"results,omitempty"`
}

type streamStatus struct {
	Name     string   `json:"name"`
	Subjects []string `json:"subjects"`
	Messages uint64   `json:"messages"`
	Bytes    uint64   `json:"bytes"`
	FirstSeq uint64   `json:"first_seq"`
	LastSeq  uint64   `json:"last_seq"`
}

type consumerStatus struct {
	Name string `json:"name"`
	// Pending: stored, not yet delivered to any worker.
	Pending uint64 `json:"pending"`
	// InFlight: delivered, not yet acknowledged (ack pending).
	InFlight int `json:"in_flight"`
	// Redelivered: in flight and delivered more than once.
	Redelivered int `json:"redelivered"`
	// WaitingPulls: pull requests of idle workers waiting for messages.
	WaitingPulls int  `json:"waiting_pulls"`
	Paused       bool `json:"paused,omitempty"`
}

type dlqStatus struct {
	Name     string         `json:"name"`
	Messages uint64         `json:"messages"`
	Bytes    uint64         `json:"bytes"`
	ByReason map[string]int `json:"by_reason"`
}

type resultsStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

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
			rep, err := collectStatus(cmd.Context(), conn, nats.cfg.ResultStream)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return rep.print(cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	fs.StringVar(&nats.cfg.ResultStream, "result-stream", queue.DefaultResultStream, "stream of result events, shown when it exists")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}

func collectStatus(ctx context.Context, conn *queue.Conn, results string) (statusReport, error) {
	cfg := conn.Config()
	var rep statusReport
	_, info, err := requireStream(ctx, conn, cfg.Stream, "stream")
	if err != nil {
		return rep, err
	}
	rep.Stream = streamStatus{
		Name: info.Config.Name, Subjects: info.Config.Subjects, Messages: info.State.Msgs,
		Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
	}
	ci, err := conn.ConsumerInfo(ctx, cfg.Stream, cfg.Consumer)
	switch {
	case errors.Is(err, queue.ErrConsumerNotFound):
	case err != nil:
		return rep, err
	default:
		rep.Consumer = &consumerStatus{
			Name: ci.Name, Pending: ci.NumPending, InFlight: ci.NumAckPending,
			Redelivered: ci.NumRedelivered, WaitingPulls: ci.NumWaiting, Paused: ci.Paused,
		}
	}
	_, dinfo, err := requireStream(ctx, conn, cfg.DLQStream, "dlq-stream")
	if err != nil {
		return rep, err
	}
	rep.DLQ = dlqStatus{Name: dinfo.Config.Name, Messages: dinfo.State.Msgs, Bytes: dinfo.State.Bytes, ByReason: map[string]int{}}
	_, _, err = scanDLQ(ctx, conn, &dlqFilter{}, 0, func(r dlqRecord) error {
		reason := r.Reason
		if r.Unreadable != "" {
			reason = "unreadable"
		}
		rep.DLQ.ByReason[reason]++
		return nil
	})
	if err != nil {
		return rep, err
	}
	if results != "" {
		rinfo, err := conn.StreamInfo(ctx, results)
		switch {
		case errors.Is(err, queue.ErrStreamNotFound):
		case err != nil:
			return rep, err
		default:
			rep.Results = &resultsStatus{Name: results, Messages: rinfo.State.Msgs, Bytes: rinfo.State.Bytes}
		}
	}
	return rep, nil
}

func (r statusReport) print(w io.Writer) error {
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
