package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/producer"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

type enqueueOptions struct {
	nats        natsOptions
	file        string
	format      string
	dedupKey    string
	rate        float64
	window      int
	reason      string
	requestedBy string
	campaign    string
	region      string
	regions     []string
	maxBytes    int
	fromLine    int
	strict      bool
	quiet       bool
	out         outputFlags
	outFormat   string // resolved from out
	every       time.Duration

	dupWindow time.Duration // the request stream's, learnt when connected
}

// Exit codes of enqueue beyond 0 (all published) and 1 (an error).
const (
	exitInvalid     = 2
	exitInterrupted = 130
)

// maxReported bounds the invalid or failed lines kept for the summary; all
// are counted.
const maxReported = 1000

func defaultEnqueueOptions() enqueueOptions {
	return enqueueOptions{
		nats: defaultNATSOptions(), format: "auto", dedupKey: "job_id", window: 512,
		requestedBy: "worker enqueue", region: "cn-north-4", maxBytes: 64 << 10, every: 5 * time.Second,
	}
}

func newEnqueueCmd() *cobra.Command {
	o := defaultEnqueueOptions()
	cmd := &cobra.Command{
		Use:   "enqueue [JOB_ID…] [--file PATH|-]",
		Short: "Publish recover requests in bulk, from arguments or a file",
		Long: `enqueue publishes recover requests to the request subject: job ids given as
arguments, and/or read from --file (- for stdin). The file is one of:
  - lines:  one job id per line, or one JSON request per line
            ({"job_id":"…","region":"…","reason":"…"}); blank lines and lines
            starting with # are skipped;
  - csv:    a header row with a job_id column (region, reason, requested_by,
            requested_at columns are used when present, others ignored).
--format auto (the default) picks csv when the first row has a job_id column.

The input is streamed: each entry is validated as it is read, with the
worker's own rules (32 ASCII letters or digits, region in --region/--regions,
body size), and published at once, so a file of any length takes the same
memory. Invalid entries are reported by line number and never published.
--strict publishes nothing when any entry is invalid: it reads the input
twice, checking every entry first (stdin is kept in a temporary file
meanwhile).

Each request carries Nats-Msg-Id (--dedup-key: the job id by default, as
CAMPAIGN:JOB_ID for a request of a campaign), so the request stream drops
repeats within its duplicate window (2m by default): a job id repeated in the
input, or rerunning the same file within the window, publishes nothing twice,
and the summary counts those as duplicates. A job enqueued in another
campaign within the window is that campaign's request, not a duplicate.
Publishing is asynchronous with at most --window requests awaiting their
acknowledgement; every ack is awaited.

Progress goes to stderr (a bar on a terminal, a line every
--progress-interval otherwise); the summary (read, invalid, published,
duplicates, failed) goes to stdout, as JSON with --json. Ctrl-C stops
cleanly: what was sent is acknowledged, the summary says how far it got and
which line to resume from (--from-line).

With OpenTelemetry tracing on (OTEL_TRACES_EXPORTER or
OTEL_EXPORTER_OTLP_ENDPOINT, as for worker run), each request gets a producer
span, the root of its own trace, and carries it in a traceparent header: the
worker's spans for that request join the trace. With tracing off nothing is
added (the worker derives each request's trace from its stream sequence).

Go programs publish requests the same way with the producer package.

Exit status: 0 all valid entries published (or already there), 1 an error or
failed publishes, 2 some entries were invalid, 130 interrupted.

` + natsFlagsHelp + `
--region, --regions and --max-body-bytes read RECOVER_REGION, RECOVER_REGIONS
and RECOVER_MAX_BODY_BYTES too, so validation matches the worker's settings.`,
		Example: `  worker enqueue cb5fa20de5fd4cf8be681d4bd6fdd2f6 0f3c8e1a2b4d4e6f8a0b1c2d3e4f5a6b
  worker enqueue --file outage-jobs.txt --reason "outage 2024-06-01"
  worker enqueue --file jobs.csv --rate 200 --json > summary.json
  kubectl logs deploy/builder | grep -o '[0-9a-f]\{32\}' | worker enqueue --file -
  worker enqueue --file jobs.txt --from-line 20001   # resume after the duplicate window`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
	fs := cmd.Flags()
	o.nats.addFlags(fs)
	fs.StringVarP(&o.file, "file", "f", "", "read entries from this file (- for stdin)")
	fs.StringVar(&o.format, "format", o.format, "file format: auto, lines (ids or JSON lines) or csv")
	fs.StringVar(&o.dedupKey, "dedup-key", o.dedupKey, `Nats-Msg-Id of each request: job_id (CAMPAIGN:JOB_ID in a campaign), none, or a template such as "{{.JobID}}-{{.Region}}" (fields JobID, Region, Reason, RequestedBy)`)
	fs.Float64Var(&o.rate, "rate", 0, "publish at most this many requests per second (0 = no limit)")
	fs.IntVar(&o.window, "window", o.window, "requests published but not yet acknowledged, at most")
	fs.StringVar(&o.reason, "reason", "", "reason of requests that give none (max 256 characters)")
	fs.StringVar(&o.requestedBy, "requested-by", o.requestedBy, "requested_by of requests that give none")
	fs.StringVar(&o.campaign, "campaign", "", "stamp every request with this campaign (letters, digits, - _ =, dots) and record its start and size in NATS KV, for worker report --campaign")
	fs.StringVar(&o.region, "region", o.region, "the worker's default region (a request naming it is valid)")
	fs.StringSliceVar(&o.regions, "regions", nil, "other regions the worker accepts (as worker run --regions)")
	fs.IntVar(&o.maxBytes, "max-body-bytes", o.maxBytes, "largest request body the worker accepts (as worker run)")
	fs.IntVar(&o.fromLine, "from-line", 0, "skip the file's lines before this one (resume an interrupted run)")
	fs.BoolVar(&o.strict, "strict", false, "publish nothing when any entry is invalid")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	addOutputFlags(cmd, &o.out)
	fs.DurationVar(&o.every, "progress-interval", o.every, "how often a progress line is printed when stderr is not a terminal")
	return cmd
}

// enqueueSummary is what enqueue reports; its JSON is stable for scripts.
type enqueueSummary struct {
	// Read counts the entries read: valid, invalid and not sent.
	Read       int   `json:"read"`
	Invalid    int   `json:"invalid"`
	Published  int64 `json:"published"`
	Duplicates int64 `json:"duplicates"`
	Failed     int64 `json:"failed"`
	// NotSent counts valid entries read but not published: the one in
	// hand when the run stopped, or all of them with --strict.
	NotSent     int  `json:"not_sent"`
	Interrupted bool `json:"interrupted"`
	// ResumeLine is the first line of the file not published when the run
	// stopped early (for --from-line).
	ResumeLine   int         `json:"resume_line,omitempty"`
	InvalidLines []lineError `json:"invalid_lines,omitempty"`
	FailedLines  []lineError `json:"failed_lines,omitempty"`
	// Campaign is the campaign's record after this run (--campaign).
	Campaign *producer.Campaign `json:"campaign,omitempty"`
}

// lineError locates a problem: a line of the file or an argument.
type lineError struct {
	Line     int    `json:"line,omitempty"`
	Argument int    `json:"argument,omitempty"`
	Error    string `json:"error"`
}

func (e lineError) String() string {
	if e.Argument > 0 {
		return fmt.Sprintf("argument %d: %s", e.Argument, e.Error)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Error)
}

// srcLoc is where an entry came from: a line (> 0) or an argument (< 0).
// As a batch reference it travels as the bits of an int64.
type srcLoc int

func (l srcLoc) err(msg string) lineError {
	if l < 0 {
		return lineError{Argument: int(-l), Error: msg}
	}
	return lineError{Line: int(l), Error: msg}
}

// ref is l as a batch reference; locOf reads it back.
func (l srcLoc) ref() uint64 { return uint64(int64(l)) } //nolint:gosec // a round trip through the bits

func locOf(ref uint64) srcLoc { return srcLoc(int64(ref)) } //nolint:gosec // see ref

// encodeOptions says how the requests are encoded: body limit, regions,
// Nats-Msg-Id (--dedup-key).
func (o *enqueueOptions) encodeOptions() (producer.EncodeOptions, error) {
	key, err := dedupKeyFunc(o.dedupKey)
	if err != nil {
		return producer.EncodeOptions{}, err
	}
	return producer.EncodeOptions{MaxBytes: o.maxBytes, Regions: o.regionSet(), MsgID: key}, nil
}

// regionSet is every region the worker accepts: --region and --regions.
func (o *enqueueOptions) regionSet() []string { return append([]string{o.region}, o.regions...) }

func (o *enqueueOptions) validateFlags(args []string) error {
	switch {
	case len(args) == 0 && o.file == "":
		return errors.New("no job ids: give them as arguments or with --file PATH (- for stdin)")
	case o.format != "auto" && o.format != "lines" && o.format != "json" && o.format != "csv":
		return fmt.Errorf("format: %q is not auto, lines or csv", o.format)
	case o.rate < 0:
		return fmt.Errorf("rate: %g is negative", o.rate)
	case o.window < 1:
		return fmt.Errorf("window: %d is below 1", o.window)
	case utf8.RuneCountInString(o.reason) > producer.MaxReasonChars:
		return errors.New("reason: over 256 characters")
	case len(o.requestedBy) > producer.MaxFieldBytes:
		return errors.New("requested-by: over 256 bytes")
	case o.maxBytes < 1:
		return fmt.Errorf("max-body-bytes: %d is below 1", o.maxBytes)
	case o.fromLine < 0:
		return fmt.Errorf("from-line: %d is negative", o.fromLine)
	case o.every <= 0:
		return fmt.Errorf("progress-interval: %s is not positive", o.every)
	}
	if o.campaign != "" {
		if err := producer.ValidCampaign(o.campaign); err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
	}
	return nil
}

func (o *enqueueOptions) run(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	var err error
	if o.outFormat, err = o.out.resolve(); err != nil {
		return err
	}
	if err := layerEnv(cmd.Flags(), []string{"region", "regions", "max-body-bytes"}, os.LookupEnv); err != nil {
		return err
	}
	if err := o.validateFlags(args); err != nil {
		return err
	}
	enc, err := o.encodeOptions()
	if err != nil {
		return err
	}
	tr, err := startTracing(ctx, stderr, func(err error) { fmt.Fprintf(stderr, "enqueue: tracing: %v\n", err) })
	if err != nil {
		return err
	}
	defer func() {
		if err := tr.shutdown(); err != nil {
			fmt.Fprintf(stderr, "enqueue: tracing: %v\n", err)
		}
	}()
	// A missing file or a CSV header without job_id costs no NATS round
	// trip.
	in, err := o.openInput(ctx, cmd.InOrStdin(), args)
	if err != nil {
		return err
	}
	defer in.close()
	total := -1 // streamed: unknown
	if o.file == "" {
		total = len(args)
	}
	if o.strict {
		check := o.newEnqueuer(enc, func(line string) { fmt.Fprintln(stderr, line) })
		if err := in.each(ctx, check); err != nil {
			if ctx.Err() != nil {
				return &exitError{code: exitInterrupted, err: errors.New("interrupted while checking the input; nothing published")}
			}
			return err
		}
		check.reportMore(stderr)
		if check.nInvalid > 0 {
			sum := enqueueSummary{Read: check.read, Invalid: check.nInvalid, InvalidLines: check.invalid, NotSent: check.read - check.nInvalid}
			if err := o.printSummary(stdout, sum); err != nil {
				return err
			}
			return &exitError{code: exitInvalid, err: fmt.Errorf("%d invalid entries; nothing published (--strict)", check.nInvalid)}
		}
		if err := in.rewind(); err != nil {
			return err
		}
		total = check.read
	}
	sum, stopErr, err := o.publish(cmd, in, enc, total, tr)
	if err != nil {
		return err
	}
	if err := o.printSummary(stdout, sum); err != nil {
		return err
	}
	sent := int64(sum.Read - sum.Invalid - sum.NotSent)
	switch {
	case stopErr != nil:
		return fmt.Errorf("stopped after %d requests: %w", sent, stopErr)
	case sum.Interrupted:
		msg := fmt.Sprintf("interrupted: %d requests sent and acknowledged", sent)
		if sum.ResumeLine > 0 {
			msg += fmt.Sprintf("; rerun the same input within %s (the stream's duplicate window), or later with --from-line %d", o.dupWindow, sum.ResumeLine)
		}
		return &exitError{code: exitInterrupted, err: errors.New(msg)}
	case sum.Failed > 0:
		return fmt.Errorf("%d requests failed to publish (rerunning the same input is safe within the stream's duplicate window)", sum.Failed)
	case sum.Invalid > 0:
		return &exitError{code: exitInvalid, err: fmt.Errorf("%d invalid entries were not published", sum.Invalid)}
	}
	return nil
}

// publish streams the input's entries to the request stream, waits for
// every ack and says what happened. A setup error (NATS, stream) is
// returned as err, before anything is read; what stopped the stream early
// (a publish that could not be sent, a read error) is stopErr, with the
// summary of what was done.
func (o *enqueueOptions) publish(cmd *cobra.Command, in *input, enc producer.EncodeOptions, total int, tr *tracing) (sum enqueueSummary, stopErr, err error) {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	conn, err := o.nats.connect(cmd)
	if err != nil {
		return sum, nil, err
	}
	defer closeConn(conn)
	cfg := conn.Config()
	_, info, err := admin.RequireStream(ctx, conn, cfg.Stream, "stream")
	if err != nil {
		return sum, nil, err
	}
	if err := checkSubject(info, cfg.Subject); err != nil {
		return sum, nil, err
	}
	o.dupWindow = info.Config.Duplicates
	client, err := producer.New(conn.NC, producer.Config{Subject: cfg.Subject, Stream: cfg.Stream, Encode: enc, TracerProvider: tr.provider(), Propagator: tr.propagator()})
	if err != nil {
		return sum, nil, err
	}
	if tr != nil && !o.quiet {
		fmt.Fprintf(stderr, "enqueue: tracing: %s\n", tr)
	}

	if o.campaign != "" {
		if _, err := client.StartCampaign(ctx, o.campaign); err != nil {
			return sum, nil, err
		}
	}
	start := time.Now()
	rep := newProgressReporter(stderr, "enqueue", total, o.quiet, o.every)
	// The batch's goroutine owns these until Close returns.
	var (
		failed []lineError
		done   int
	)
	batch, err := client.NewBatch(producer.BatchConfig{
		Window: o.window,
		OnResult: func(r producer.BatchResult) {
			done++
			if r.Err != nil && len(failed) < maxReported {
				failed = append(failed, locOf(r.Ref).err(r.Err.Error()))
			}
			rep.update(done)
		},
	})
	if err != nil {
		return sum, nil, err
	}
	e := o.newEnqueuer(enc, func(line string) { rep.println(stderr, line) })
	e.batch, e.limiter = batch, retry.PerSecond(o.rate)
	readErr := in.each(ctx, e)
	// Every sent request's fate is known once Close returns, even after
	// Ctrl-C: the acks are awaited, not abandoned.
	st := batch.Close()
	rep.finish()
	e.reportMore(stderr)

	sum = enqueueSummary{
		Read: e.read, Invalid: e.nInvalid, InvalidLines: e.invalid, NotSent: e.notSent,
		Published: st.Stored, Duplicates: st.Duplicates, Failed: st.Failed, FailedLines: failed,
	}
	if o.campaign != "" {
		// Recorded whatever stopped the run: what was stored belongs to
		// the campaign. A context detached from Ctrl-C, bounded.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		c, err := client.AddToCampaign(rctx, o.campaign, st.Stored)
		cancel()
		if err != nil {
			return sum, nil, fmt.Errorf("%d requests stored, but the campaign's size was not recorded: %w", st.Stored, err)
		}
		sum.Campaign = &c
	}
	if readErr != nil {
		if ctx.Err() != nil {
			sum.Interrupted = true
		} else {
			stopErr = readErr
		}
		if in.file != nil && e.resume > 0 {
			sum.ResumeLine = int(e.resume)
		}
	}
	if !o.quiet {
		elapsed := time.Since(start)
		fmt.Fprintf(stderr, "enqueue: %d requests acknowledged by stream %s (subject %s) in %s, %.0f/s\n",
			st.Done(), cfg.Stream, cfg.Subject, elapsed.Round(time.Millisecond), float64(st.Done())/max(elapsed.Seconds(), 1e-9))
	}
	for _, e := range failed {
		fmt.Fprintf(stderr, "failed %s\n", e)
	}
	return sum, stopErr, nil
}

// enqueuer takes the input's entries one by one: each is read with the
// worker's decoder (every form it accepts), given --reason and
// --requested-by when it has none, and published; an invalid one is
// reported by its line. Without a batch (--strict's first pass) it only
// checks. It keeps nothing per entry: its memory is the same for any
// input.
type enqueuer struct {
	decode      worker.DecodeOptions
	enc         producer.EncodeOptions
	reason      string
	requestedBy string
	campaign    string
	print       func(line string) // an invalid entry, as it is found
	batch       *producer.Batch
	limiter     *rate.Limiter

	read, nInvalid, notSent int
	invalid                 []lineError
	// resume is the line to resume from: the one after the last line
	// published or found invalid, or the line in hand when the run stopped.
	resume srcLoc
}

func (o *enqueueOptions) newEnqueuer(enc producer.EncodeOptions, print func(string)) *enqueuer {
	return &enqueuer{
		decode: worker.DecodeOptions{MaxBytes: o.maxBytes, ValidRegion: func(r string) bool { return slices.Contains(enc.Regions, r) }},
		enc:    enc, reason: o.reason, requestedBy: o.requestedBy, campaign: o.campaign, print: print,
	}
}

func (e *enqueuer) invalidAt(l srcLoc, msg string) {
	e.read++
	e.nInvalid++
	if len(e.invalid) < maxReported {
		le := l.err(msg)
		e.invalid = append(e.invalid, le)
		e.print("invalid " + le.String())
	}
	e.handled(l)
}

func (e *enqueuer) handled(l srcLoc) {
	if l > 0 {
		e.resume = l + 1
	}
}

// reportMore says how many invalid entries were not printed.
func (e *enqueuer) reportMore(w io.Writer) {
	if e.nInvalid > len(e.invalid) {
		fmt.Fprintf(w, "… and %d more invalid entries\n", e.nInvalid-len(e.invalid))
	}
}

// add takes the entry raw found at l. Its error (ctx's, or a publish that
// could not be sent) stops the input.
func (e *enqueuer) add(ctx context.Context, l srcLoc, raw []byte) error {
	req, err := worker.Decode(raw, nil, e.decode)
	if err != nil {
		e.invalidAt(l, err.Error())
		return nil
	}
	r := producer.Request{JobID: req.JobID, Region: req.Region, Reason: req.Reason, RequestedBy: req.RequestedBy, RequestedAt: req.RequestedAt, Campaign: req.Campaign}
	switch {
	case r.Campaign == "":
		r.Campaign = e.campaign
	case e.campaign != "" && r.Campaign != e.campaign:
		e.invalidAt(l, fmt.Sprintf("campaign %q is not --campaign %q", clipRunes(r.Campaign, 64), e.campaign))
		return nil
	}
	if r.Reason == "" {
		r.Reason = e.reason
	}
	if r.RequestedBy == "" {
		r.RequestedBy = e.requestedBy
	}
	if e.batch == nil {
		// What would be published is what the worker will read: check
		// that, not only the input.
		if _, err := producer.Encode(r, e.enc); err != nil {
			e.invalidAt(l, err.Error())
			return nil
		}
		e.read++
		e.handled(l)
		return nil
	}
	if e.limiter != nil {
		err = e.limiter.Wait(ctx)
	}
	if err == nil {
		err = e.batch.Enqueue(ctx, r, l.ref())
		if _, ok := errors.AsType[*producer.InvalidError](err); ok {
			e.invalidAt(l, err.Error())
			return nil
		}
	}
	e.read++
	if err != nil {
		e.notSent++
		if l > 0 {
			e.resume = l
		}
		return err
	}
	e.handled(l)
	return nil
}

// dedupKeyFunc turns --dedup-key into the Nats-Msg-Id of a request.
func dedupKeyFunc(spec string) (func(producer.Request) (string, error), error) {
	switch spec {
	case "job_id", "":
		// The job id, within its campaign: a job enqueued in a second
		// campaign inside the duplicate window is a request of that
		// campaign, not a duplicate of the first one's.
		return func(r producer.Request) (string, error) {
			if r.Campaign == "" {
				return r.JobID, nil
			}
			return r.Campaign + ":" + r.JobID, nil
		}, nil
	case "none":
		return func(producer.Request) (string, error) { return "", nil }, nil
	}
	if !strings.Contains(spec, "{{") {
		return nil, fmt.Errorf("dedup-key: %q is not job_id, none or a template such as {{.JobID}}-{{.Region}} (a constant would make every request a duplicate of the first)", spec)
	}
	tmpl, err := template.New("dedup-key").Option("missingkey=error").Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("dedup-key: %w", err)
	}
	if err := tmpl.Execute(io.Discard, producer.Request{}); err != nil {
		return nil, fmt.Errorf("dedup-key: %w", err)
	}
	return func(r producer.Request) (string, error) {
		var b strings.Builder
		if err := tmpl.Execute(&b, r); err != nil {
			return "", fmt.Errorf("dedup-key: %w", err)
		}
		id := b.String()
		if id == "" || strings.ContainsAny(id, "\r\n") {
			return "", fmt.Errorf("dedup-key: %q is not a usable message id", id)
		}
		return id, nil
	}, nil
}

func (o *enqueueOptions) printSummary(w io.Writer, s enqueueSummary) error {
	if o.outFormat != outputTable {
		return writeStructured(w, o.outFormat, s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "read\t%d\n", s.Read)
	fmt.Fprintf(tw, "invalid\t%d\n", s.Invalid)
	fmt.Fprintf(tw, "published\t%d\n", s.Published)
	fmt.Fprintf(tw, "duplicates\t%d\n", s.Duplicates)
	fmt.Fprintf(tw, "failed\t%d\n", s.Failed)
	if s.NotSent > 0 {
		fmt.Fprintf(tw, "not sent\t%d\n", s.NotSent)
	}
	if c := s.Campaign; c != nil {
		fmt.Fprintf(tw, "campaign\t%s: %d requests since %s (%d runs)\n", c.Name, c.Size, c.StartedAt.Format(time.RFC3339), c.Runs)
	}
	return tw.Flush()
}

// ---- input ----

// input is what enqueue reads: the arguments, then the file's entries,
// one at a time, never all at once.
type input struct {
	args     []string
	format   string
	maxBytes int
	fromLine int

	file     io.Reader // nil without --file
	closers  []io.Closer
	reopen   func() (io.Reader, error) // for --strict's second pass
	br       *bufio.Reader
	csv      *csv.Reader
	csvCols  map[string]int
	csvEmpty bool // no header at all: no entries
}

// openInput opens --file (stdin for -), skips a BOM, detects the format
// and reads a CSV header. A regular file is read again by seeking back;
// anything else (stdin, a pipe, a FIFO) is read once, so with --strict it
// is copied to a temporary file as it is read, for the second pass.
func (o *enqueueOptions) openInput(ctx context.Context, stdin io.Reader, args []string) (*input, error) {
	in := &input{args: args, format: o.format, maxBytes: o.maxBytes, fromLine: o.fromLine}
	r := stdin
	switch o.file {
	case "":
		return in, nil
	case "-":
	default:
		f, err := os.Open(o.file)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		in.closers = append(in.closers, f)
		r = f
	}
	if err := in.open(ctx, r, o.strict); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func (in *input) open(ctx context.Context, r io.Reader, strict bool) error {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			in.file = f
			in.reopen = func() (io.Reader, error) {
				_, err := f.Seek(0, io.SeekStart)
				return f, err
			}
			return in.start()
		}
		r = &interruptible{ctx: ctx, r: f}
	}
	if strict {
		spool, err := os.CreateTemp("", "worker-enqueue-")
		if err != nil {
			return fmt.Errorf("file: %w", err)
		}
		_ = os.Remove(spool.Name()) // unlinked: gone with the process
		in.closers = append(in.closers, spool)
		r = io.TeeReader(r, spool)
		in.reopen = func() (io.Reader, error) {
			_, err := spool.Seek(0, io.SeekStart)
			return spool, err
		}
	}
	in.file = r
	return in.start()
}

func (in *input) close() {
	for _, c := range in.closers {
		_ = c.Close()
	}
}

// rewind starts the file again, for --strict's second pass.
func (in *input) rewind() error {
	if in.file == nil {
		return nil
	}
	r, err := in.reopen()
	if err != nil {
		return fmt.Errorf("file: %w", err)
	}
	in.file = r
	return in.start()
}

// start reads the head of the file: BOM, format, CSV header.
func (in *input) start() error {
	in.br = bufio.NewReaderSize(in.file, 64<<10)
	skipBOM(in.br)
	format := in.format
	if format == "auto" {
		format = detectFormat(in.br)
	}
	in.csv, in.csvEmpty = nil, false
	if format != "csv" {
		return nil
	}
	cr := csv.NewReader(in.br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true
	cr.Comment = '#'
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			in.csvEmpty = true
			return nil
		}
		return fmt.Errorf("file: csv header: %w", err)
	}
	in.csvCols = map[string]int{}
	for _, name := range []string{"job_id", "region", "reason", "requested_by", "requested_at"} {
		in.csvCols[name] = csvColumn(header, name)
	}
	if in.csvCols["job_id"] < 0 {
		return errors.New("file: csv header has no job_id column")
	}
	in.csv = cr
	return nil
}

// each hands every entry to e, in order: the arguments, then the file.
func (in *input) each(ctx context.Context, e *enqueuer) error {
	for i, a := range in.args {
		if err := e.add(ctx, srcLoc(-(i + 1)), []byte(strings.TrimSpace(a))); err != nil {
			return err
		}
	}
	switch {
	case in.file == nil || in.csvEmpty:
		return nil
	case in.csv != nil:
		return in.eachCSV(ctx, e)
	}
	return in.eachLine(ctx, e)
}

func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
}

// detectFormat looks at the first entry: csv when it is a header row with a
// job_id column, lines otherwise. It reads no further than that entry's
// line, so a pipe that trickles starts being published at once.
func detectFormat(br *bufio.Reader) string {
	for want := 1; ; {
		_, err := br.Peek(want) // blocks until there is more, or the end
		head, _ := br.Peek(br.Buffered())
		final := err != nil || len(head) == br.Size()
		if format, ok := firstEntryFormat(head, final); ok {
			return format
		}
		want = len(head) + 1
	}
}

// firstEntryFormat decides the format from the first entry in head, whose
// last line is complete only when final; ok is false when that entry is
// not all there yet.
func firstEntryFormat(head []byte, final bool) (format string, ok bool) {
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else if !final {
			return "", false
		} else {
			head = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if line[0] == '{' {
			return "lines", true
		}
		rec, err := csv.NewReader(bytes.NewReader(line)).Read()
		if err == nil && csvColumn(rec, "job_id") >= 0 {
			return "csv", true
		}
		return "lines", true
	}
	return "lines", final
}

func csvColumn(header []string, name string) int {
	for i, h := range header {
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return i
		}
	}
	return -1
}

// eachLine hands each non-blank, non-comment line to e. A line longer than
// the body limit is invalid without being held in memory.
func (in *input) eachLine(ctx context.Context, e *enqueuer) error {
	var line []byte
	n, tooLong := 0, false
	for {
		frag, isPrefix, err := in.br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("file: %w", err)
		}
		if !tooLong {
			line = append(line, frag...)
			tooLong = len(line) > in.maxBytes
		}
		if isPrefix {
			continue
		}
		n++
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		switch trimmed := bytes.TrimSpace(line); {
		case n < in.fromLine || len(trimmed) == 0 || trimmed[0] == '#':
		case tooLong:
			e.invalidAt(srcLoc(n), fmt.Sprintf("invalid request: line is over the %d byte body limit", in.maxBytes))
		default:
			if err := e.add(ctx, srcLoc(n), trimmed); err != nil {
				return err
			}
		}
		line, tooLong = line[:0], false
	}
}

// eachCSV hands each row of a CSV file to e, as a JSON request object.
func (in *input) eachCSV(ctx context.Context, e *enqueuer) error {
	cr := in.csv
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if pe, ok := errors.AsType[*csv.ParseError](err); ok {
			e.invalidAt(srcLoc(pe.StartLine), "invalid csv: "+pe.Err.Error())
			continue
		}
		if err != nil {
			return fmt.Errorf("file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if line < in.fromLine {
			continue
		}
		obj := map[string]string{}
		for name, i := range in.csvCols {
			if i >= 0 && i < len(rec) {
				if val := strings.TrimSpace(rec[i]); val != "" || name == "job_id" {
					obj[name] = val
				}
			}
		}
		if _, ok := obj["job_id"]; !ok {
			obj["job_id"] = ""
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if err := e.add(ctx, srcLoc(line), raw); err != nil {
			return err
		}
	}
}

// interruptible makes a read of r return ctx's error once ctx ends, even
// while the read blocks: a terminal or a pipe cannot be interrupted, and
// Ctrl-C must not wait for the next line. A read in progress is left to
// its goroutine, which ends when r answers (or the process exits); it
// reads into a buffer of its own, never into the caller's.
type interruptible struct {
	ctx  context.Context //nolint:containedctx // a Read takes no context
	r    io.Reader
	buf  []byte
	res  chan readResult
	busy bool
}

type readResult struct {
	n   int
	err error
}

func (c *interruptible) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if !c.busy {
		if c.res == nil {
			c.res = make(chan readResult, 1)
		}
		if len(c.buf) < len(p) {
			c.buf = make([]byte, len(p))
		}
		buf, r, res := c.buf[:len(p)], c.r, c.res
		c.busy = true
		go func() {
			n, err := r.Read(buf)
			res <- readResult{n, err}
		}()
	}
	select {
	case r := <-c.res:
		c.busy = false
		return copy(p, c.buf[:r.n]), r.err
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
}
