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

	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/admin"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/jobid"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
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
	region      string
	regions     []string
	maxBytes    int
	fromLine    int
	strict      bool
	quiet       bool
	jsonOut     bool
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

func newEnqueueCmd() *cobra.Command {
	o := enqueueOptions{
		nats: defaultNATSOptions(), format: "auto", dedupKey: "job_id", window: 512,
		requestedBy: "worker enqueue", region: "cn-north-4", maxBytes: 64 << 10, every: 5 * time.Second,
	}
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

Every entry is validated first, with the worker's own rules (32 ASCII letters
or digits, region in --region/--regions, body size): invalid ones are reported
by line number and never published; the valid ones are (none with --strict).
A job id repeated in the input is published once.

Each request carries Nats-Msg-Id (--dedup-key: the job id by default), so the
request stream drops repeats within its duplicate window (2m by default):
rerunning the same file within it publishes nothing twice, and the summary
counts those as duplicates. Publishing is asynchronous with at most --window
requests awaiting their acknowledgement; every ack is awaited.

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
	fs.StringVar(&o.dedupKey, "dedup-key", o.dedupKey, `Nats-Msg-Id of each request: job_id, none, or a template such as "{{.JobID}}-{{.Region}}" (fields JobID, Region, Reason, RequestedBy)`)
	fs.Float64Var(&o.rate, "rate", 0, "publish at most this many requests per second (0 = no limit)")
	fs.IntVar(&o.window, "window", o.window, "requests published but not yet acknowledged, at most")
	fs.StringVar(&o.reason, "reason", "", "reason of requests that give none (max 256 characters)")
	fs.StringVar(&o.requestedBy, "requested-by", o.requestedBy, "requested_by of requests that give none")
	fs.StringVar(&o.region, "region", o.region, "the worker's default region (a request naming it is valid)")
	fs.StringSliceVar(&o.regions, "regions", nil, "other regions the worker accepts (as worker run --regions)")
	fs.IntVar(&o.maxBytes, "max-body-bytes", o.maxBytes, "largest request body the worker accepts (as worker run)")
	fs.IntVar(&o.fromLine, "from-line", 0, "skip the file's lines before this one (resume an interrupted run)")
	fs.BoolVar(&o.strict, "strict", false, "publish nothing when any entry is invalid")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	fs.BoolVar(&o.jsonOut, "json", false, "print the summary as one JSON object")
	fs.DurationVar(&o.every, "progress-interval", o.every, "how often a progress line is printed when stderr is not a terminal")
	return cmd
}

// enqueueSummary is what enqueue reports; its JSON is stable for scripts.
type enqueueSummary struct {
	Read        int   `json:"read"`
	Invalid     int   `json:"invalid"`
	Published   int64 `json:"published"`
	Duplicates  int64 `json:"duplicates"`
	Failed      int64 `json:"failed"`
	NotSent     int   `json:"not_sent"`
	Interrupted bool  `json:"interrupted"`
	// ResumeLine is the first line of the file not published when the run
	// stopped early (for --from-line).
	ResumeLine   int         `json:"resume_line,omitempty"`
	InvalidLines []lineError `json:"invalid_lines,omitempty"`
	FailedLines  []lineError `json:"failed_lines,omitempty"`
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
type srcLoc int

func (l srcLoc) err(msg string) lineError {
	if l < 0 {
		return lineError{Argument: int(-l), Error: msg}
	}
	return lineError{Line: int(l), Error: msg}
}

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
	case utf8.RuneCountInString(o.reason) > 256:
		return errors.New("reason: over 256 characters")
	case len(o.requestedBy) > 256:
		return errors.New("requested-by: over 256 bytes")
	case o.maxBytes < 1:
		return fmt.Errorf("max-body-bytes: %d is below 1", o.maxBytes)
	case o.fromLine < 0:
		return fmt.Errorf("from-line: %d is negative", o.fromLine)
	case o.every <= 0:
		return fmt.Errorf("progress-interval: %s is not positive", o.every)
	}
	return nil
}

func (o *enqueueOptions) run(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := layerEnv(cmd.Flags(), []string{"region", "regions", "max-body-bytes"}, os.LookupEnv); err != nil {
		return err
	}
	if err := o.validateFlags(args); err != nil {
		return err
	}
	key, err := dedupKeyFunc(o.dedupKey)
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
	// Read and validate everything before connecting: a bad file costs no
	// NATS round trip and publishes nothing invalid.
	v := &enqValidator{
		opts:   worker.DecodeOptions{MaxBytes: o.maxBytes, ValidRegion: o.validRegion},
		reason: o.reason, requestedBy: o.requestedBy, key: key,
	}
	if err := o.read(ctx, cmd.InOrStdin(), args, v); err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitInterrupted, err: errors.New("interrupted while reading the input; nothing published")}
		}
		return err
	}
	for _, e := range v.invalid {
		fmt.Fprintf(stderr, "invalid %s\n", e)
	}
	if v.nInvalid > len(v.invalid) {
		fmt.Fprintf(stderr, "… and %d more invalid entries\n", v.nInvalid-len(v.invalid))
	}
	sum := enqueueSummary{
		Read: v.read, Invalid: v.nInvalid, Duplicates: int64(v.repeats),
		InvalidLines: v.invalid, NotSent: len(v.items),
	}
	if o.strict && v.nInvalid > 0 {
		if err := o.printSummary(stdout, sum); err != nil {
			return err
		}
		return &exitError{code: exitInvalid, err: fmt.Errorf("%d invalid entries; nothing published (--strict)", v.nInvalid)}
	}
	var sendErr error
	if len(v.items) > 0 {
		if sendErr, err = o.publish(cmd, v, &sum, tr); err != nil {
			return err
		}
	}
	if err := o.printSummary(stdout, sum); err != nil {
		return err
	}
	switch {
	case sendErr != nil:
		return fmt.Errorf("stopped after %d of %d requests: %w", len(v.items)-sum.NotSent, len(v.items), sendErr)
	case sum.Interrupted:
		msg := fmt.Sprintf("interrupted: %d of %d requests sent and acknowledged", len(v.items)-sum.NotSent, len(v.items))
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

func (o *enqueueOptions) validRegion(r string) bool {
	return r == o.region || slices.Contains(o.regions, r)
}

// read validates the arguments, then the file.
func (o *enqueueOptions) read(ctx context.Context, stdin io.Reader, args []string, v *enqValidator) error {
	for i, a := range args {
		v.add(srcLoc(-(i + 1)), []byte(strings.TrimSpace(a)))
	}
	if o.file == "" {
		return nil
	}
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return fmt.Errorf("file: %w", err)
		}
		defer func() { _ = f.Close() }()
		return o.readFile(ctx, f, v)
	}
	if _, ok := stdin.(*os.File); !ok {
		return o.readFile(ctx, stdin, v)
	}
	// A read from a terminal or pipe cannot be interrupted: on Ctrl-C,
	// return at once and leave the reader blocked until the process exits
	// (v is not touched again).
	done := make(chan error, 1)
	go func() { done <- o.readFile(ctx, stdin, v) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *enqueueOptions) readFile(ctx context.Context, r io.Reader, v *enqValidator) error {
	br := bufio.NewReaderSize(r, 64<<10)
	skipBOM(br)
	format := o.format
	if format == "auto" {
		format = detectFormat(br)
	}
	if format == "csv" {
		return readCSV(ctx, br, o.fromLine, v)
	}
	return readLines(ctx, br, o.maxBytes, o.fromLine, v)
}

func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
}

// detectFormat looks at the first entry: csv when it is a header row with a
// job_id column, lines otherwise.
func detectFormat(br *bufio.Reader) string {
	head, _ := br.Peek(br.Size())
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if line[0] == '{' {
			return "lines"
		}
		rec, err := csv.NewReader(bytes.NewReader(line)).Read()
		if err == nil && csvColumn(rec, "job_id") >= 0 {
			return "csv"
		}
		return "lines"
	}
	return "lines"
}

func csvColumn(header []string, name string) int {
	for i, h := range header {
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return i
		}
	}
	return -1
}

// readLines feeds each non-blank, non-comment line to v. A line longer than
// the body limit is invalid without being held in memory.
func readLines(ctx context.Context, br *bufio.Reader, maxBytes, fromLine int, v *enqValidator) error {
	var line []byte
	n, tooLong := 0, false
	for {
		frag, isPrefix, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("file: %w", err)
		}
		if !tooLong {
			line = append(line, frag...)
			tooLong = len(line) > maxBytes
		}
		if isPrefix {
			continue
		}
		n++
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		switch trimmed := bytes.TrimSpace(line); {
		case n < fromLine || len(trimmed) == 0 || trimmed[0] == '#':
		case tooLong:
			v.invalidAt(srcLoc(n), fmt.Sprintf("invalid request: line is over the %d byte body limit", maxBytes))
		default:
			v.add(srcLoc(n), trimmed)
		}
		line, tooLong = line[:0], false
	}
}

// readCSV feeds each row of a CSV file with a job_id column to v.
func readCSV(ctx context.Context, br *bufio.Reader, fromLine int, v *enqValidator) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true
	cr.Comment = '#'
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("file: csv header: %w", err)
	}
	cols := map[string]int{}
	for _, name := range []string{"job_id", "region", "reason", "requested_by", "requested_at"} {
		cols[name] = csvColumn(header, name)
	}
	if cols["job_id"] < 0 {
		return errors.New("file: csv header has no job_id column")
	}
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			v.invalidAt(srcLoc(pe.StartLine), "invalid csv: "+pe.Err.Error())
			continue
		}
		if err != nil {
			return fmt.Errorf("file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if line < fromLine {
			continue
		}
		obj := map[string]string{}
		for name, i := range cols {
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
		v.add(srcLoc(line), raw)
	}
}

// enqValidator checks entries with the worker's decoder and keeps the valid
// ones compactly: bodies and message ids back to back in one buffer.
type enqValidator struct {
	opts        worker.DecodeOptions
	reason      string
	requestedBy string
	key         func(worker.Request) (string, error)

	buf   []byte
	items []enqEntry
	seen  map[string]struct{}

	read, nInvalid, repeats int
	invalid                 []lineError
}

type enqEntry struct {
	loc                 srcLoc
	off, bodyLen, idLen int
}

func (v *enqValidator) body(e enqEntry) []byte { return v.buf[e.off : e.off+e.bodyLen] }
func (v *enqValidator) msgID(e enqEntry) string {
	return string(v.buf[e.off+e.bodyLen : e.off+e.bodyLen+e.idLen])
}

func (v *enqValidator) invalidAt(l srcLoc, msg string) {
	v.read++
	v.nInvalid++
	if len(v.invalid) < maxReported {
		v.invalid = append(v.invalid, l.err(msg))
	}
}

// add validates raw as the worker would, and keeps the request it becomes
// (its canonical JSON form, with --reason/--requested-by filled in), unless
// its message id was seen already.
func (v *enqValidator) add(l srcLoc, raw []byte) {
	req, err := worker.Decode(raw, nil, v.opts)
	if err != nil {
		v.invalidAt(l, err.Error())
		return
	}
	if req.Reason == "" {
		req.Reason = v.reason
	}
	if req.RequestedBy == "" {
		req.RequestedBy = v.requestedBy
	}
	body, err := json.Marshal(req)
	if err != nil {
		v.invalidAt(l, err.Error())
		return
	}
	// What is published is what the worker will read: check that, not
	// only the input.
	if _, err := worker.Decode(body, nil, v.opts); err != nil {
		v.invalidAt(l, err.Error())
		return
	}
	id, err := v.key(req)
	if err != nil {
		v.invalidAt(l, err.Error())
		return
	}
	v.read++
	if id != "" {
		if v.seen == nil {
			v.seen = map[string]struct{}{}
		}
		if _, dup := v.seen[id]; dup {
			v.repeats++
			return
		}
		v.seen[id] = struct{}{}
	}
	e := enqEntry{loc: l, off: len(v.buf), bodyLen: len(body), idLen: len(id)}
	v.buf = append(append(v.buf, body...), id...)
	v.items = append(v.items, e)
}

// dedupKeyFunc turns --dedup-key into a function of the request.
func dedupKeyFunc(spec string) (func(worker.Request) (string, error), error) {
	switch spec {
	case "job_id", "":
		return func(r worker.Request) (string, error) { return r.JobID, nil }, nil
	case "none":
		return func(worker.Request) (string, error) { return "", nil }, nil
	}
	if !strings.Contains(spec, "{{") {
		return nil, fmt.Errorf("dedup-key: %q is not job_id, none or a template such as {{.JobID}}-{{.Region}} (a constant would make every request a duplicate of the first)", spec)
	}
	tmpl, err := template.New("dedup-key").Option("missingkey=error").Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("dedup-key: %w", err)
	}
	if err := tmpl.Execute(io.Discard, worker.Request{}); err != nil {
		return nil, fmt.Errorf("dedup-key: %w", err)
	}
	return func(r worker.Request) (string, error) {
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

// publish sends the validated requests, waits for every ack and fills sum.
// A setup error (NATS, stream) is returned as err; a publish that could not
// be sent stops the run and is returned as sendErr once sum is complete.
func (o *enqueueOptions) publish(cmd *cobra.Command, v *enqValidator, sum *enqueueSummary, tr *tracing) (sendErr, err error) {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	conn, err := o.nats.connect(cmd)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	cfg := conn.Config()
	_, info, err := admin.RequireStream(ctx, conn, cfg.Stream, "stream")
	if err != nil {
		return nil, err
	}
	if err := checkSubject(info, cfg.Subject); err != nil {
		return nil, err
	}
	o.dupWindow = info.Config.Duplicates

	if tr != nil && !o.quiet {
		fmt.Fprintf(stderr, "enqueue: tracing: %s\n", tr)
	}
	spans := newPublishSpans(tr, cfg.Subject, len(v.items))
	start := time.Now()
	rep := newProgressReporter(stderr, "enqueue", len(v.items), o.quiet, o.every)
	var (
		failed []lineError
		done   int
	)
	pub, err := conn.NewPublisher(queue.PublisherConfig{
		Window: o.window, ExpectStream: cfg.Stream,
		OnResult: func(r queue.PublishResult) {
			done++
			spans.end(r)
			if r.Err != nil && len(failed) < maxReported {
				failed = append(failed, v.items[r.Ref].loc.err(r.Err.Error()))
			}
			rep.update(done)
		},
	})
	if err != nil {
		return nil, err
	}
	limiter := retry.PerSecond(o.rate)
	sent := 0
	for i, e := range v.items {
		if ctx.Err() != nil {
			break
		}
		if limiter != nil && limiter.Wait(ctx) != nil {
			break
		}
		out := queue.Outgoing{Subject: cfg.Subject, MsgID: v.msgID(e), Data: v.body(e), Ref: uint64(i)}
		out.Header = spans.start(ctx, out)
		err := pub.Publish(ctx, out)
		if err != nil {
			spans.end(queue.PublishResult{Outgoing: queue.Outgoing{Ref: out.Ref}, Err: err}) // not sent at all
			if ctx.Err() == nil {
				sendErr = err
			}
			break
		}
		sent++
	}
	// Every sent request's fate is known once Close returns, even after
	// Ctrl-C: the acks are awaited, not abandoned.
	st := pub.Close()
	rep.finish()

	sum.Published = st.Stored
	sum.Duplicates += st.Duplicates
	sum.Failed = st.Failed
	sum.FailedLines = failed
	sum.NotSent = len(v.items) - sent
	if sum.NotSent > 0 {
		sum.Interrupted = sendErr == nil
		if l := v.items[sent].loc; l > 0 {
			sum.ResumeLine = int(l)
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
	return sendErr, nil
}

func (o *enqueueOptions) printSummary(w io.Writer, s enqueueSummary) error {
	if o.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
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
	return tw.Flush()
}

// progressReporter shows the progress of a bulk operation on stderr: a bar with
// rate and ETA on a terminal, a line every interval otherwise, nothing when
// quiet. It is used from one goroutine at a time.
type progressReporter struct {
	w           io.Writer
	what        string
	bar         *progressbar.ProgressBar
	total       int
	every       time.Duration
	start, last time.Time
}

func newProgressReporter(w io.Writer, what string, total int, quiet bool, every time.Duration) *progressReporter {
	r := &progressReporter{what: what, total: total, every: every, start: time.Now()}
	r.last = r.start
	if quiet {
		return r
	}
	r.w = w
	if isTerminal(w) {
		r.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	return r
}

func (r *progressReporter) update(done int) {
	switch {
	case r.w == nil:
	case r.bar != nil:
		_ = r.bar.Set(done)
	default:
		now := time.Now()
		if now.Sub(r.last) < r.every {
			return
		}
		r.last = now
		elapsed := now.Sub(r.start).Seconds()
		perSec := float64(done) / max(elapsed, 1e-9)
		eta := "?"
		if perSec > 0 {
			eta = (time.Duration(float64(r.total-done)/perSec) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(r.w, "%s: %d/%d (%.0f%%), %.0f/s, eta %s\n", r.what, done, r.total, 100*float64(done)/float64(max(r.total, 1)), perSec, eta)
	}
}

func (r *progressReporter) finish() {
	if r.bar != nil {
		_ = r.bar.Finish()
		_ = r.bar.Exit()
	}
}

// publishSpans are enqueue's producer spans, one per request, each the root
// of the request's trace; a nil *publishSpans (tracing off) does nothing.
// A span starts before the publish (so it includes any wait for a slot in
// the publish window) and ends when the request's publish ack arrives; it
// says the stream sequence and whether it was a duplicate.
type publishSpans struct {
	tracer  trace.Tracer
	subject string
	// spans[ref] is written by the publishing goroutine before Publish and
	// read by the ack collector after it: Publish hands the message over
	// on a channel, which orders the two.
	spans []trace.Span
}

func newPublishSpans(tr *tracing, subject string, n int) *publishSpans {
	t := tr.tracer("github.com/codearts-recover-worker/codearts-recover-worker/cmd/worker")
	if t == nil {
		return nil
	}
	return &publishSpans{tracer: t, subject: subject, spans: make([]trace.Span, n)}
}

// start begins the span of out and returns the headers that carry it.
func (s *publishSpans) start(ctx context.Context, out queue.Outgoing) nats.Header {
	if s == nil {
		return nil
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.destination.name", s.subject))
	if out.MsgID != "" {
		attrs = append(attrs, attribute.String("messaging.message.id", out.MsgID))
	}
	if id := bodyJobID(out.Data); id != "" {
		attrs = append(attrs, attribute.String("job_id", id))
	}
	ctx, span := s.tracer.Start(ctx, "send "+s.subject, trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	s.spans[out.Ref] = span
	h := nats.Header{}
	worker.InjectTrace(ctx, h)
	return h
}

// end ends the span of a request whose fate is known.
func (s *publishSpans) end(r queue.PublishResult) {
	if s == nil {
		return
	}
	span := s.spans[r.Ref]
	s.spans[r.Ref] = nil
	if r.Err != nil {
		span.SetStatus(codes.Error, r.Err.Error())
	} else {
		span.SetAttributes(attribute.Int64("stream_seq", int64(r.Seq)), attribute.Bool("duplicate", r.Duplicate)) //nolint:gosec // a stream sequence
	}
	span.End()
}

// bodyJobID reads the job id from a body enqueue built: the canonical JSON
// of a worker.Request, whose first field is the job id. "" for anything
// else.
func bodyJobID(body []byte) string {
	const prefix = `{"job_id":"`
	if !bytes.HasPrefix(body, []byte(prefix)) || len(body) <= len(prefix)+jobid.Len || body[len(prefix)+jobid.Len] != '"' {
		return ""
	}
	return string(body[len(prefix) : len(prefix)+jobid.Len])
}
