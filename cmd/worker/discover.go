package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/discover"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
)

// discoverOptions are the flags of `worker discover`.
type discoverOptions struct {
	api           codearts.Config
	projects      []string
	all           bool
	pageSize      int
	disabledAfter string
	disabledBy    []string
	name          string
	details       bool
	stateReads    int
	jsonOut       bool
	rateLimit     float64
	rateBurst     int
	backoff       retry.Policy
	quiet         bool
	every         time.Duration

	enqueue bool
	eq      enqueueOptions // --enqueue's NATS and request flags
}

func newDiscoverCmd() *cobra.Command {
	o := discoverOptions{
		api:        codearts.Config{Region: "cn-north-4", Timeout: 10 * time.Second},
		pageSize:   codearts.MaxPageSize,
		stateReads: 8,
		backoff:    retry.Policy{Initial: retry.DefaultInitial, Max: retry.DefaultMax},
		every:      5 * time.Second,
		eq:         defaultEnqueueOptions(),
	}
	o.eq.requestedBy = "worker discover"
	cmd := &cobra.Command{
		Use:   "discover (--project-id ID… | --all-projects) [--enqueue]",
		Short: "List the disabled build jobs of projects, print them or enqueue their recovery",
		Long: `discover lists the build jobs of each --project-id (ShowJobListByProjectId,
GET /v3/{project_id}/jobs) or of every project the credentials see
(--all-projects: ListJob, GET /v1/job/list), page by page, and keeps the
disabled ones.

Paging goes through the worker's rate limiter, circuit breaker,
classification and backoff: a throttle or a 5xx in the middle is retried,
never skipped, for as long as it lasts (Ctrl-C stops); during an outage the
breaker opens and the reads wait for its half-open probes instead of each
retrying; an answer that is wrong for every page (401, 403, 404 APIG.0101,
400) stops discover with that error. With NATS (--enqueue, or --nats-url /
NATS_URL / --context given) the reads take a share of the fleet's rate of
the workers' default region under the fleet's cap (worker run's
--rate-limit), so discovery spends the workers' quota, not a second one;
without NATS, --rate-limit paces this process alone. Both answer
shapes of the v3 list are read ({"jobs":…} and {"result":{"job_list":…}}),
and lists counting pages from 0 or from 1.

Filters: --name (a pattern: * ? [a-z]), --disabled-by (repeatable) and
--disabled-after (RFC 3339, or a duration: 6h means six hours ago). The last
two read each disabled job's state (ShowDisable): one more API call per
disabled job. --details reads it without filtering, for the --json records.

Output: job ids, one per line, for worker enqueue --file -; or --json, one
record per line (job_id, project_id, name, creator, and with the state read
disabled_by, disabled_reason, disabled_at). Progress goes to stderr (a
counter on a terminal, a line every --progress-interval otherwise), then a
summary line.

--enqueue publishes the jobs found as recover requests instead, as
worker enqueue does (Nats-Msg-Id the job id, --campaign recorded in NATS KV),
and prints enqueue's summary (--json: as JSON).

Credentials as for worker run (HUAWEICLOUD_SDK_AK/SK …); the reads count
against the same API quota as the workers': give discover a --rate-limit
that leaves them room.

` + natsFlagsHelp,
		Example: `  worker discover --project-id 2b7e1a… --project-id 9c4d… > disabled.txt
  worker discover --all-projects --disabled-after 2026-12-03T08:00:00Z --disabled-by ops-bot --json
  worker discover --all-projects --enqueue --campaign outage-2026-12-03 --reason "outage INC-42"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.projects, "project-id", nil, "project whose jobs to list (repeatable)")
	fs.BoolVar(&o.all, "all-projects", false, "list every job the credentials see, across projects")
	fs.IntVar(&o.pageSize, "page-size", o.pageSize, "jobs asked for per page, 1 to 100")
	fs.StringVar(&o.disabledAfter, "disabled-after", "", "keep jobs disabled at or after this time (RFC 3339, or a duration ago, e.g. 6h); reads each job's state")
	fs.StringArrayVar(&o.disabledBy, "disabled-by", nil, "keep jobs disabled by this user (repeatable); reads each job's state")
	fs.StringVar(&o.name, "name", "", "keep jobs whose name matches this pattern (* ? [a-z])")
	fs.BoolVar(&o.details, "details", false, "read each disabled job's state (who, why, when) for --json, one more call per job")
	fs.IntVar(&o.stateReads, "state-reads", 8, "state reads (ShowDisable) in flight at once, within --rate-limit")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON record per job (with --enqueue: the summary as JSON)")
	fs.StringVar(&o.api.Region, "region", o.api.Region, "API region (with --enqueue also the requests' worker default region)")
	fs.StringVar(&o.api.Endpoint, "endpoint", "", "API endpoint overriding the regional one (e.g. a simulator)")
	fs.DurationVar(&o.api.Timeout, "api-timeout", o.api.Timeout, "timeout of one API call")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "API reads per second, 0 = no cap (throttles still slow it)")
	fs.IntVar(&o.rateBurst, "rate-burst", 0, "API read burst (default: rate-limit / 10, at least 1)")
	fs.DurationVar(&o.backoff.Initial, "backoff-initial", o.backoff.Initial, "first retry wait")
	fs.DurationVar(&o.backoff.Max, "backoff-max", o.backoff.Max, "longest retry wait")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress on stderr")
	fs.DurationVar(&o.every, "progress-interval", o.every, "how often a progress line is printed when stderr is not a terminal")
	fs.BoolVar(&o.enqueue, "enqueue", false, "publish the jobs found as recover requests instead of printing them")
	e := &o.eq
	e.nats.addFlags(fs)
	fs.StringVar(&e.campaign, "campaign", "", "with --enqueue: stamp the requests with this campaign and record it (see worker enqueue --campaign)")
	fs.StringVar(&e.reason, "reason", "", "with --enqueue: the requests' reason (max 256 characters)")
	fs.StringVar(&e.requestedBy, "requested-by", e.requestedBy, "with --enqueue: the requests' requested_by")
	fs.IntVar(&e.window, "window", e.window, "with --enqueue: requests published but not yet acknowledged, at most")
	return cmd
}

// config turns the flags into discover's configuration, naming a bad flag.
func (o *discoverOptions) config(now time.Time) (discover.Config, error) {
	cfg := discover.Config{Projects: o.projects, AllProjects: o.all, PageSize: o.pageSize, Details: o.details, StateReads: o.stateReads,
		Policy: o.backoff, Filter: discover.Filter{DisabledBy: o.disabledBy, Name: o.name}}
	switch {
	case o.all && len(o.projects) > 0:
		return cfg, errors.New("project-id and all-projects: give one, not both")
	case !o.all && len(o.projects) == 0:
		return cfg, errors.New("no project: give --project-id (repeatable) or --all-projects")
	case o.pageSize < 1 || o.pageSize > codearts.MaxPageSize:
		return cfg, fmt.Errorf("page-size: %d is not 1 to %d", o.pageSize, codearts.MaxPageSize)
	case o.rateLimit < 0:
		return cfg, fmt.Errorf("rate-limit: %g is negative", o.rateLimit)
	case o.stateReads < 1:
		return cfg, fmt.Errorf("state-reads: %d is below 1", o.stateReads)
	case o.every <= 0:
		return cfg, fmt.Errorf("progress-interval: %s is not positive", o.every)
	}
	for _, p := range o.projects {
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "/?# ") {
			return cfg, fmt.Errorf("project-id: %q is not a project id", p)
		}
	}
	if o.disabledAfter != "" {
		t, err := parseSince(o.disabledAfter, now)
		if err != nil {
			return cfg, fmt.Errorf("disabled-after: %w", err)
		}
		cfg.Filter.DisabledAfter = t
	}
	if err := cfg.Filter.Validate(); err != nil {
		return cfg, fmt.Errorf("name: %w", err)
	}
	if !o.enqueue && o.eq.campaign != "" {
		return cfg, errors.New("campaign: only with --enqueue (or pipe the ids to worker enqueue --campaign)")
	}
	if o.enqueue {
		o.eq.region, o.eq.out.json, o.eq.quiet, o.eq.every = o.api.Region, o.jsonOut, o.quiet, o.every
		if err := o.eq.validateFlags([]string{"x"}); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// limiter paces discover's reads. When NATS is configured (--enqueue, or
// --nats-url/NATS_URL/--context given) it is a share of the fleet's rate
// of the workers' default region, under the fleet's cap: discovery spends
// the workers' quota, not a second one. Otherwise, or when NATS cannot be
// reached without --enqueue (a warning), --rate-limit paces this process.
func (o *discoverOptions) limiter(cmd *cobra.Command) (*retry.Limiter, func(), error) {
	lc := retry.LimiterConfig{Rate: o.rateLimit, Burst: o.rateBurst}
	own := func() (*retry.Limiter, func(), error) {
		lim, err := retry.NewLimiter(lc)
		if err != nil {
			return nil, nil, fmt.Errorf("rate-limit: %w", err)
		}
		return lim, func() {}, nil
	}
	_, envURL := os.LookupEnv("NATS_URL")
	fs := cmd.Flags()
	if !o.enqueue && !envURL && !fs.Changed("nats-url") && !fs.Changed("context") {
		return own()
	}
	stderr := cmd.ErrOrStderr()
	conn, err := o.eq.nats.connect(cmd)
	if err != nil {
		if o.enqueue {
			return nil, nil, err
		}
		fmt.Fprintf(stderr, "discover: NATS not reachable (%v): reads paced by --rate-limit alone, not by the fleet's rate\n", err)
		return own()
	}
	j, err := wire.JoinFleet(cmd.Context(), conn, "discover", lc)
	if err != nil {
		closeConn(conn)
		fmt.Fprintf(stderr, "discover: the fleet's rate could not be joined (%v): reads paced by --rate-limit alone\n", err)
		return own()
	}
	if fs.Changed("rate-limit") && j.Cap != o.rateLimit {
		fmt.Fprintf(stderr, "discover: --rate-limit %g replaced by the fleet's cap %g (worker run's --rate-limit)\n", o.rateLimit, j.Cap)
	}
	return j.Limiter, func() {
		j.Leave()
		closeConn(conn)
	}, nil
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration (e.g. 6h)", v)
}

func (o *discoverOptions) run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	cfg, err := o.config(time.Now())
	if err != nil {
		return err
	}
	// The same refusal as run: credentials never over plaintext off this
	// machine unless --allow-insecure.
	if err := plaintextEndpoint(o.api.Endpoint, o.eq.nats.allowInsecure); err != nil {
		return err
	}
	if o.enqueue {
		if err := o.eq.nats.resolve(cmd); err != nil {
			return err
		}
	}
	if o.api.Credentials.AK == "" {
		creds, err := codearts.LoadCredentials()
		if err != nil {
			return errors.New("credentials: none found; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK " +
				"(or CLOUD_SDK_AK/CLOUD_SDK_SK, the SDK profile file, CCE pod identity or ECS metadata)")
		}
		o.api.Credentials = creds
	}
	if o.api.ProjectID = o.api.Credentials.ProjectID; o.api.ProjectID == "" && len(o.projects) > 0 {
		o.api.ProjectID = o.projects[0]
	}
	api, err := codearts.NewClient(o.api)
	if err != nil {
		return err
	}
	defer func() { _ = api.Close() }()
	lim, leave, err := o.limiter(cmd)
	if err != nil {
		return err
	}
	defer leave()
	cfg.API, cfg.Limiter = api, lim

	rep := newProgressReporter(stderr, "discover: jobs listed", -1, o.quiet, o.every)
	cfg.Progress = func(p discover.Progress) { rep.update(p.Listed) }
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	var ids []string
	p, runErr := discover.Run(ctx, cfg, func(j discover.Job) error {
		switch {
		case o.enqueue:
			ids = append(ids, j.ID)
			return nil
		case o.jsonOut:
			return enc.Encode(j)
		default:
			_, err := out.WriteString(j.ID + "\n")
			return err
		}
	})
	rep.finish()
	if err := out.Flush(); err != nil && runErr == nil {
		runErr = err
	}
	if !o.quiet || runErr != nil {
		fmt.Fprintln(stderr, discoverSummary(p))
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted: %d disabled jobs found so far (printed, not enqueued)", p.Matched)}
	case runErr != nil:
		return runErr
	case !o.enqueue:
		return nil
	case len(ids) == 0:
		fmt.Fprintln(stderr, "discover: no disabled job found; nothing enqueued")
		return nil
	}
	return o.publish(cmd, ids)
}

// publish enqueues ids as worker enqueue does with ids as arguments.
func (o *discoverOptions) publish(cmd *cobra.Command, ids []string) error {
	e := &o.eq
	enc, err := e.encodeOptions()
	if err != nil {
		return err
	}
	in := &input{args: ids, format: e.format, maxBytes: e.maxBytes}
	sum, stopErr, err := e.publish(cmd, in, enc, len(ids), nil)
	if err != nil {
		return err
	}
	if err := e.printSummary(cmd.OutOrStdout(), sum); err != nil {
		return err
	}
	switch {
	case stopErr != nil:
		return fmt.Errorf("enqueue stopped: %w", stopErr)
	case sum.Interrupted:
		return &exitError{code: exitInterrupted, err: errors.New("interrupted while enqueueing; rerun discover --enqueue: the stream drops the repeats")}
	case sum.Failed > 0:
		return fmt.Errorf("%d requests failed to publish (rerunning is safe within the stream's duplicate window)", sum.Failed)
	}
	return nil
}

func discoverSummary(p discover.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "discover: %d disabled of %d jobs", p.Disabled, p.Listed)
	if p.Matched != p.Disabled {
		fmt.Fprintf(&b, ", %d kept", p.Matched)
	}
	fmt.Fprintf(&b, " (%d lists, %d pages", p.Lists, p.Pages)
	if p.StateReads > 0 {
		fmt.Fprintf(&b, ", %d state reads", p.StateReads)
	}
	if p.Enabled > 0 || p.Gone > 0 {
		fmt.Fprintf(&b, ", %d enabled and %d deleted since listed", p.Enabled, p.Gone)
	}
	fmt.Fprintf(&b, ", %d retries, %d throttled) in %s", p.Retries, p.Throttles, p.Elapsed.Round(time.Millisecond))
	return b.String()
}
