package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge dead letters",
		Long: `dlq works on the dead-letter stream: the requests the worker gave up on, one
JSON record each (job id, reason, HTTP status, error code and message, the API's
request id, attempts, the original message).

Reasons: client_error (the API answered 4xx, e.g. 404 job not found or 403 no
permission), invalid_request (not a recover request at all), retries_exhausted
(transient failures outlasted the attempt budget), max_deliveries (the message
reached the consumer's delivery limit, e.g. it crashed the worker).

A typical morning after: 'worker dlq list' to see what failed, 'worker dlq
show SEQ' for one record, fix the cause (permissions, the API), then
'worker dlq replay --reason client_error' and watch 'worker status'.`,
		Example: `  worker dlq list --reason client_error --since 24h
  worker dlq show 1042
  worker dlq replay --status 403 --dry-run
  worker dlq replay --status 403
  worker dlq purge --reason invalid_request --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQReplayCmd(), newDLQPurgeCmd())
	return cmd
}

// addFilterFlags binds the dead-letter filters to flags.
func addFilterFlags(fs *pflag.FlagSet, f *admin.Filter) {
	fs.StringSliceVar(&f.Reasons, "reason", nil, "only these reasons: "+strings.Join(admin.Reasons, ", "))
	fs.StringSliceVar(&f.Statuses, "status", nil, "only these HTTP statuses (404, 4xx; 0 = no API answer)")
	fs.StringSliceVar(&f.ErrorCodes, "error-code", nil, "only these API error codes (e.g. CB.00060214)")
	fs.StringSliceVar(&f.JobIDs, "job-id", nil, "only these job ids")
	fs.StringVar(&f.Since, "since", "", "only dead letters that failed at or after this time (RFC 3339, 2006-01-02, or an age such as 90m, 24h, 7d)")
	fs.StringVar(&f.Until, "until", "", "only dead letters that failed before this time (same forms as --since)")
}

// dlqTable prints dead letters as rows of fixed-width columns, one at a
// time, so a listing of any length streams. width > 0 cuts each row to it
// (the error message gives way first); 0 never cuts.
type dlqTable struct {
	w     *bufio.Writer
	seqW  int
	width int
	rows  int
}

func newDLQTable(w io.Writer, lastSeq uint64, width int) *dlqTable {
	return &dlqTable{w: bufio.NewWriter(w), seqW: max(len("SEQ"), len(strconv.FormatUint(lastSeq, 10))), width: width}
}

const dlqRowFormat = "%*s  %-20s  %-32s  %-17s  %-6s  %-12s  %s"

func (t *dlqTable) line(seq, failedAt, job, reason, status, code, msg string) error {
	fixed := fmt.Sprintf(dlqRowFormat, t.seqW, seq, failedAt, job, reason, status, code, "")
	if t.width > 0 {
		msg = clipRunes(msg, max(t.width-utf8.RuneCountInString(fixed), 10))
	}
	_, err := fmt.Fprintln(t.w, strings.TrimRight(fixed+msg, " "))
	return err
}

func (t *dlqTable) header() error {
	return t.line("SEQ", "FAILED AT", "JOB ID", "REASON", "STATUS", "ERROR CODE", "ERROR")
}

func (t *dlqTable) row(r admin.Record) error {
	if t.rows == 0 {
		if err := t.header(); err != nil {
			return err
		}
	}
	t.rows++
	d := r.DeadLetter
	failedAt, status, msg := "-", "-", d.ErrorMsg
	if !d.FailedAt.IsZero() {
		failedAt = d.FailedAt.UTC().Format(time.RFC3339)
	}
	if d.StatusCode != 0 {
		status = strconv.Itoa(d.StatusCode)
	}
	if r.Unreadable != "" {
		msg = r.Unreadable
	}
	// Every column comes from a record anyone able to publish a request
	// shaped, so each is folded, not only the message.
	return t.line(strconv.FormatUint(r.Seq, 10), failedAt, flatten(dashIfEmpty(d.JobID)), flatten(dashIfEmpty(d.Reason)), status,
		clipRunes(flatten(dashIfEmpty(d.ErrorCode)), 12), flatten(msg))
}

func (t *dlqTable) flush() error { return t.w.Flush() }

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// flatten folds what a terminal would act on into spaces, so a record stays
// on its row and cannot move the cursor, rewrite the screen or reorder the
// text: C0 and C1 controls (a C1 CSI, U+009B, starts an escape sequence like
// ESC [), DEL, line and paragraph separators, and the bidirectional controls
// (U+061C, U+200E/F, U+202A-E, U+2066-9: "Trojan Source").
func flatten(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < ' ', r >= 0x7f && r <= 0x9f, r == '\u2028', r == '\u2029',
			r == '\u061c', r == '\u200e', r == '\u200f', r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return ' '
		}
		return r
	}, s)
}

// clipRunes shortens s to n runes, marking the cut with an ellipsis.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

// ---- list ----

func newDLQListCmd() *cobra.Command {
	var (
		nats   = defaultNATSOptions()
		f      admin.Filter
		limit  int
		width  int
		output outputFlags
	)
	cmd := &cobra.Command{
		Use:   "list [filters]",
		Short: "List dead letters, oldest first",
		Long: `list prints the dead letters that match the filters, oldest first: a table
(stream sequence, failed at in UTC, job id, reason, HTTP status, error code,
error message cut to the terminal's width) or, with --json, one JSON record per
line (the whole record, with its dlq_seq). It streams: any number of
dead letters is listed without being held in memory. The count goes to stderr.

` + natsFlagsHelp,
		Example: `  worker dlq list
  worker dlq list --reason client_error --status 404 --since 24h
  worker dlq list --error-code CB.00060201 --limit 20
  worker dlq list --json | jq -r .job_id | sort -u > failed-jobs.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := output.resolve()
			if err != nil {
				return err
			}
			if err := f.Parse(time.Now()); err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("limit: %d is negative", limit)
			}
			if width < 0 {
				return fmt.Errorf("width: %d is negative", width)
			}
			conn, err := nats.connect(cmd)
			if err != nil {
				return err
			}
			defer closeConn(conn)
			ctx := cmd.Context()
			_, info, err := admin.RequireStream(ctx, conn, conn.Config().DLQStream, "dlq-stream")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !cmd.Flags().Changed("width") {
				width = terminalWidth(out)
			}
			table := newDLQTable(out, info.State.LastSeq, width)
			enc := recordWriter{w: table.w, format: format}
			matched, total, err := admin.Scan(ctx, conn, &f, limit, func(r admin.Record) error {
				if format != outputTable {
					return enc.encode(r)
				}
				return table.row(r)
			})
			if ferr := table.flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if matched == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no dead letters match (%d in %s)\n", total, conn.Config().DLQStream)
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d dead letters listed\n", matched)
			return nil
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	addFilterFlags(fs, &f)
	fs.IntVar(&limit, "limit", 0, "list at most this many (0 = all)")
	fs.IntVar(&width, "width", 0, "cut rows to this many columns (default: the terminal's width; not cut when not a terminal)")
	addOutputFlags(cmd, &output)
	fs.Lookup("output").Usage = "output format: table, json (one record per line) or yaml (one document per record)"
	return cmd
}

// ---- show ----

func newDLQShowCmd() *cobra.Command {
	nats := defaultNATSOptions()
	var output outputFlags
	cmd := &cobra.Command{
		Use:   "show SEQ…",
		Short: "Print whole dead-letter records as JSON (or YAML)",
		Long: `show prints the dead letters stored at the given sequences of the dead-letter
stream (the SEQ column of 'worker dlq list') as indented JSON (-o yaml: one
YAML document each): every field of
the record, including the original message (subject, stream sequence,
headers, body) exactly as the worker received it. A body too large to keep
in the record (over 16 KiB encoded) is kept as body_size, body_sha256 and a
body_prefix, with truncated: true; show says so on stderr, and such a dead
letter cannot be replayed.

` + natsFlagsHelp,
		Example: `  worker dlq show 1042
  worker dlq show 1042 1043 | jq .original.body`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := output.resolve()
			if err != nil {
				return err
			}
			if format == outputTable {
				return usageError(errors.New("output: dlq show prints whole records: -o json or -o yaml"))
			}
			seqs, err := parseSeqs(args)
			if err != nil {
				return err
			}
			conn, err := nats.connect(cmd)
			if err != nil {
				return err
			}
			defer closeConn(conn)
			ctx := cmd.Context()
			dlq, _, err := admin.RequireStream(ctx, conn, conn.Config().DLQStream, "dlq-stream")
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			for _, seq := range seqs {
				m, err := dlq.GetMsg(ctx, seq)
				if errors.Is(err, queue.ErrMsgNotFound) {
					return fmt.Errorf("no dead letter %d in %s (replayed, purged or expired?)", seq, dlq.Name())
				}
				if err != nil {
					return err
				}
				r := admin.DecodeRecord(m)
				if format == outputYAML {
					err = recordWriter{w: cmd.OutOrStdout(), format: format}.encode(r)
				} else {
					err = enc.Encode(r)
				}
				if err != nil {
					return err
				}
				if r.Unreadable == "" && !r.Original.Replayable() {
					fmt.Fprintf(cmd.ErrOrStderr(), "dead letter %d: original body of %d bytes not kept (sha256 %s); not replayable\n",
						seq, r.Original.BodySize, r.Original.BodySHA256)
				}
			}
			return nil
		},
	}
	nats.addFlags(cmd.Flags())
	addOutputFlags(cmd, &output)
	// A record has no table: JSON unless asked for YAML.
	output.format = outputJSON
	f := cmd.Flags().Lookup("output")
	f.DefValue, f.Usage = outputJSON, "output format: json or yaml"
	return cmd
}

func parseSeqs(args []string) ([]uint64, error) {
	seqs := make([]uint64, 0, len(args))
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a dead-letter sequence (a positive number from the SEQ column)", a)
		}
		seqs = append(seqs, n)
	}
	slices.Sort(seqs)
	return slices.Compact(seqs), nil
}

// ---- replay ----

type replayOptions struct {
	nats   natsOptions
	filter admin.Filter
	all    bool
	dryRun bool
	rate   float64
	window int
	limit  int
	quiet  bool
	every  time.Duration
	// out is -o; outFormat the format it resolved to.
	out       outputFlags
	outFormat string
}

// replayHook, when set (by tests), runs after a replay's publish ack and
// before its dead letter is removed; an error there leaves the dead letter
// in place, as a crash at that moment would.
var replayHook func(dlqSeq uint64) error

func newDLQReplayCmd() *cobra.Command {
	o := replayOptions{nats: defaultNATSOptions(), window: 64, every: 5 * time.Second}
	cmd := &cobra.Command{
		Use:   "replay [SEQ…] [filters] [--all]",
		Short: "Publish dead letters' original requests again, then remove them",
		Long: `replay republishes the original request of each selected dead letter (its
body and headers, byte for byte) to the request subject, and removes the dead
letter only after the request stream acknowledged the replay. Select dead
letters by sequence (SEQ…), by filters, or all of them with --all; SEQ and
filters together replay the given sequences that match. --dry-run lists what
would be replayed.

Each replay carries the header Recover-Replay-Of: <dead-letter sequence> and
the Nats-Msg-Id replay-<sequence>-<stored time>, so an interrupted replay
(Ctrl-C, crash, lost connection) is safe to run again: a dead letter replayed
but not yet removed is recognised as a duplicate by the request stream and
only removed. That holds within the request stream's duplicate window (its
Duplicates setting, 2m by default): rerun an interrupted replay within it.
Later, a dead letter that was replayed but not yet removed when the replay
was interrupted is replayed a second time (recovered twice, never lost).

Fix the cause first (permissions, the job, the API): a request that fails
the same way is dead-lettered again, as a new record.

A dead letter whose original body was too large to keep (truncated: only its
size, SHA-256 and a prefix are in the record) is never replayed: it is
reported on stderr, counted as not replayable, and left in place (purge it,
or enqueue its job again).

` + natsFlagsHelp,
		Example: `  worker dlq replay --reason client_error --dry-run
  worker dlq replay --reason client_error
  worker dlq replay 1042 1043
  worker dlq replay --error-code APIG.0308 --since 2024-06-01 --rate 50
  worker dlq replay --all`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	fs := cmd.Flags()
	o.nats.addFlags(fs)
	addFilterFlags(fs, &o.filter)
	fs.BoolVar(&o.all, "all", false, "replay every dead letter (required when no SEQ or filter is given)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list what would be replayed; change nothing")
	fs.Float64Var(&o.rate, "rate", 0, "replay at most this many per second (0 = no limit)")
	fs.IntVar(&o.window, "window", o.window, "replays published but not yet acknowledged, at most")
	fs.IntVar(&o.limit, "limit", 0, "replay at most this many (0 = all that match)")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	addOutputFlags(cmd, &o.out)
	fs.DurationVar(&o.every, "progress-interval", o.every, "how often a progress line is printed when stderr is not a terminal")
	return cmd
}

func (o *replayOptions) run(cmd *cobra.Command, args []string) (err error) {
	if o.outFormat, err = o.out.resolve(); err != nil {
		return err
	}
	seqs, err := parseSeqs(args)
	if err != nil {
		return err
	}
	if err := o.filter.Parse(time.Now()); err != nil {
		return err
	}
	switch {
	case len(seqs) == 0 && o.filter.Empty() && !o.all:
		return errors.New("say which dead letters to replay: SEQ…, a filter (--reason, --status…) or --all")
	case o.all && (len(seqs) > 0 || !o.filter.Empty()):
		return errors.New("all: not with SEQ or filters")
	case o.rate < 0:
		return fmt.Errorf("rate: %g is negative", o.rate)
	case o.window < 1:
		return fmt.Errorf("window: %d is below 1", o.window)
	case o.limit < 0:
		return fmt.Errorf("limit: %d is negative", o.limit)
	case o.every <= 0:
		return fmt.Errorf("progress-interval: %s is not positive", o.every)
	}
	conn, err := o.nats.connect(cmd)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	ctx := cmd.Context()
	cfg := conn.Config()
	dlq, dlqInfo, err := admin.RequireStream(ctx, conn, cfg.DLQStream, "dlq-stream")
	if err != nil {
		return err
	}
	_, reqInfo, err := admin.RequireStream(ctx, conn, cfg.Stream, "stream")
	if err != nil {
		return err
	}
	if err := checkSubject(reqInfo, cfg.Subject); err != nil {
		return err
	}

	if len(seqs) == 0 {
		if seqs, err = admin.Select(ctx, conn, &o.filter, o.limit); err != nil {
			return err
		}
	} else if o.limit > 0 && len(seqs) > o.limit {
		seqs = seqs[:o.limit]
	}

	if o.dryRun {
		sum, err := o.dryRunList(cmd, dlq, seqs, dlqInfo.State.LastSeq)
		if err != nil {
			return err
		}
		skipped := ""
		if sum.NotReplayable > 0 {
			skipped = fmt.Sprintf("; %d not replayable: body truncated", sum.NotReplayable)
		}
		_, err = fmt.Fprintf(cmd.ErrOrStderr(), "would replay %d dead letters to %s (dry run: nothing changed%s)\n",
			sum.Matched-sum.NotReplayable, cfg.Subject, skipped)
		return err
	}
	sum, err := o.replay(cmd, conn, dlq, seqs)
	if perr := o.printSummary(cmd.OutOrStdout(), sum, cfg); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	switch {
	case sum.Interrupted:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted after %d of %d selected dead letters; run the same replay again within %s (the request stream's duplicate window) to finish without replaying any twice",
			sum.Matched+sum.Gone, len(seqs), reqInfo.Config.Duplicates)}
	case sum.Failed > 0:
		return fmt.Errorf("%d dead letters not replayed or not removed (they are still in %s; rerun within %s)", sum.Failed, cfg.DLQStream, reqInfo.Config.Duplicates)
	case sum.NotReplayable > 0:
		return fmt.Errorf("%d dead letters not replayable: body truncated (they stay in %s; 'worker dlq show SEQ' prints each body's size and SHA-256)", sum.NotReplayable, cfg.DLQStream)
	}
	return nil
}

func (o *replayOptions) dryRunList(cmd *cobra.Command, dlq *queue.Stream, seqs []uint64, lastSeq uint64) (admin.ReplaySummary, error) {
	var sum admin.ReplaySummary
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	table := newDLQTable(out, lastSeq, terminalWidth(out))
	enc := recordWriter{w: table.w, format: o.outFormat}
	for _, seq := range seqs {
		r, ok, err := admin.Fetch(ctx, dlq, seq)
		if err != nil {
			return sum, err
		}
		if !ok {
			sum.Gone++
			continue
		}
		if !o.filter.Match(&r) {
			continue
		}
		sum.Matched++
		if r.Unreadable == "" && !r.Original.Replayable() {
			sum.NotReplayable++
			fmt.Fprintf(cmd.ErrOrStderr(), "dead letter %d: %s\n", seq, admin.NotReplayableText(&r))
			continue
		}
		if o.outFormat != outputTable {
			err = enc.encode(r)
		} else {
			err = table.row(r)
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, table.flush()
}

func (o *replayOptions) replay(cmd *cobra.Command, conn *queue.Conn, dlq *queue.Stream, seqs []uint64) (admin.ReplaySummary, error) {
	stderr := &admin.LockedWriter{W: cmd.ErrOrStderr()}
	rep := newProgressReporter(stderr, "replay", len(seqs), o.quiet, o.every)
	sum, err := admin.Replay(cmd.Context(), conn, dlq, seqs, admin.ReplayConfig{
		Filter: &o.filter, Window: o.window, Rate: o.rate, Progress: rep.update, Problems: stderr,
		BeforeRemove: replayHook,
	})
	rep.finish()
	return sum, err
}

func (o *replayOptions) printSummary(w io.Writer, s admin.ReplaySummary, cfg queue.Config) error {
	if o.outFormat != outputTable {
		return writeStructured(w, o.outFormat, s)
	}
	skipped := ""
	if s.NotReplayable > 0 {
		skipped = fmt.Sprintf(", %d not replayable: body truncated", s.NotReplayable)
	}
	_, err := fmt.Fprintf(w, "replayed %d of %d dead letters to %s (%d already replayed earlier, %d failed, %d gone%s)\n",
		s.Replayed+s.AlreadyReplayed, s.Matched, cfg.Subject, s.AlreadyReplayed, s.Failed, s.Gone, skipped)
	return err
}

// ---- purge ----

func newDLQPurgeCmd() *cobra.Command {
	var (
		nats = defaultNATSOptions()
		f    admin.Filter
		yes  bool
	)
	cmd := &cobra.Command{
		Use:   "purge [filters] --yes",
		Short: "Delete dead letters for good",
		Long: `purge deletes the dead letters that match the filters, or every dead letter
when no filter is given (messages that arrive meanwhile are kept). It says how
many would go, then asks for confirmation when stdin is a terminal; otherwise
it requires --yes. There is no undo: consider 'worker dlq list --json' first.

` + natsFlagsHelp,
		Example: `  worker dlq purge --reason invalid_request
  worker dlq purge --until 7d --yes
  worker dlq purge --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.Parse(time.Now()); err != nil {
				return err
			}
			conn, err := nats.connect(cmd)
			if err != nil {
				return err
			}
			defer closeConn(conn)
			plan, err := admin.PlanPurge(cmd.Context(), conn, &f)
			if err != nil {
				return err
			}
			out, name := cmd.OutOrStdout(), plan.DLQ.Name()
			if plan.Count == 0 {
				_, err := fmt.Fprintf(out, "no dead letters match; nothing purged\n")
				return err
			}
			if !yes {
				if err := confirm(cmd, fmt.Sprintf("Delete %d dead letters from %s for good?", plan.Count, name)); err != nil {
					return err
				}
			}
			purged, err := admin.Purge(cmd.Context(), plan)
			if err != nil {
				fmt.Fprintf(out, "purged %d of %d dead letters from %s\n", purged, plan.Count, name)
				return err
			}
			_, err = fmt.Fprintf(out, "purged %d dead letters from %s\n", purged, name)
			return err
		},
	}
	fs := cmd.Flags()
	nats.addFlags(fs)
	addFilterFlags(fs, &f)
	fs.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (required when stdin is not a terminal)")
	return cmd
}

// confirm asks question on stderr and reads the answer from stdin when
// stdin is a terminal; otherwise it refuses.
func confirm(cmd *cobra.Command, question string) error {
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return fmt.Errorf("%s Pass --yes to confirm (stdin is not a terminal, so there is no prompt)", question)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed; nothing purged")
}
