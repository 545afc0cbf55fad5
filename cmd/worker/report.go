package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

func newReportCmd() *cobra.Command {
	nats := defaultNATSOptions()
	var (
		name             string
		jsonOut, csvOut  bool
		withJobs, strict bool
	)
	cmd := &cobra.Command{
		Use:   "report --campaign NAME",
		Short: "A campaign's outcomes: recovered, already enabled, dead-lettered by reason, in flight",
		Long: `report reads the campaign's record (its size and start, written by
worker enqueue --campaign or worker discover --enqueue --campaign) and the
result events that name it, and prints:

  enqueued          requests stored for the campaign
  recovered         of which verified (worker run --verify read the job back enabled)
  already enabled   ended without a recover: the job was not disabled (--skip-enabled)
  dead-lettered     by reason and error code
  in flight         enqueued and not finished yet

as a table, --json (add --jobs for every job), or --csv: one row per job with
its latest outcome (job_id, outcome, verified, reason, status, error_code,
request_id, attempts, at, stream_seq), what goes into the incident's
postmortem. Jobs still in flight are read from the request stream.

Outcomes count jobs, each by its latest result: a dead letter replayed with
worker dlq replay (it keeps its campaign, and adds nothing to the size) that
then recovers counts as recovered, once; "repeated" says how many results
replaced an earlier one. In flight counts requests enqueued without a result
yet. The result stream is read from the campaign's start (less 5 minutes for
clock skew), found by time, not from its first message. Result events are
kept for --result-max-age (7 days by default): report within it.
Exit status: 0, or 3 with --strict when requests are still in flight or
dead-lettered.

` + natsFlagsHelp,
		Example: `  worker report --campaign outage-2026-12-03
  worker report --campaign outage-2026-12-03 --csv > postmortem.csv
  worker report --campaign outage-2026-12-03 --json | jq .dead_lettered_by`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := producer.ValidCampaign(name); err != nil {
				return fmt.Errorf("campaign: %w", err)
			}
			if jsonOut && csvOut {
				return errors.New("json and csv: choose one")
			}
			conn, err := nats.connect(cmd, "result-stream")
			if err != nil {
				return err
			}
			defer closeConn(conn)
			rep, err := admin.CollectCampaign(cmd.Context(), conn, name, admin.CampaignConfig{Jobs: csvOut || withJobs})
			if errors.Is(err, producer.ErrNoCampaign) {
				return fmt.Errorf("campaign %q: not recorded on stream %s (enqueue it with --campaign)", name, conn.Config().Stream)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case jsonOut:
				err = printReportJSON(out, rep)
			case csvOut:
				err = printReportCSV(out, rep)
			default:
				err = printReport(out, rep, time.Now())
			}
			if err != nil {
				return err
			}
			if strict && (rep.InFlight > 0 || rep.DeadLettered > 0) {
				return &exitError{code: 3, err: fmt.Errorf("campaign %s: %d in flight, %d dead-lettered", name, rep.InFlight, rep.DeadLettered)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	fs.StringVar(&nats.cfg.ResultStream, "result-stream", queue.DefaultResultStream, "stream of result events")
	fs.StringVar(&name, "campaign", "", "the campaign (required)")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&csvOut, "csv", false, "print every job and its outcome as CSV")
	fs.BoolVar(&withJobs, "jobs", false, "with --json: every job and its outcome")
	fs.BoolVar(&strict, "strict", false, "exit 3 while requests are in flight or any was dead-lettered")
	return cmd
}

func printReport(w io.Writer, r *admin.CampaignReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s\n", r.Campaign)
	fmt.Fprintf(tw, "started\t%s (%s ago)\n", r.StartedAt.UTC().Format(time.RFC3339), now.Sub(r.StartedAt).Round(time.Second))
	fmt.Fprintf(tw, "enqueued\t%d\n", r.Enqueued)
	fmt.Fprintf(tw, "recovered\t%d\t%s\n", r.Recovered, pct(r.Recovered, r.Enqueued))
	fmt.Fprintf(tw, "  verified\t%d\n", r.Verified)
	fmt.Fprintf(tw, "already enabled\t%d\t%s\n", r.AlreadyEnabled, pct(r.AlreadyEnabled, r.Enqueued))
	fmt.Fprintf(tw, "dead-lettered\t%d\t%s\n", r.DeadLettered, pct(r.DeadLettered, r.Enqueued))
	for _, rc := range r.ByReason {
		label := rc.Reason
		if rc.ErrorCode != "" {
			label += " " + rc.ErrorCode
		}
		fmt.Fprintf(tw, "  %s\t%d\n", sanitizeCell(label), rc.Count)
	}
	fmt.Fprintf(tw, "in flight\t%d\t%s\n", r.InFlight, pct(r.InFlight, r.Enqueued))
	if r.Repeated > 0 {
		fmt.Fprintf(tw, "repeated\t%d\t(later results of the same jobs: replays, repeats; each job counts once, by its latest)\n", r.Repeated)
	}
	if !r.LastResultAt.IsZero() {
		fmt.Fprintf(tw, "last result\t%s\n", r.LastResultAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func pct(n, of int64) string {
	if of <= 0 {
		return ""
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64) + "%"
}

func printReportJSON(w io.Writer, r *admin.CampaignReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func printReportCSV(w io.Writer, r *admin.CampaignReport) error { return r.WriteCSV(w) }

// sanitizeCell keeps control characters out of the table.
func sanitizeCell(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
