//go:build !nodemo

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// simulateOptions are the flags of `worker simulate`.
type simulateOptions struct {
	addr                        string
	latency, jitter, retryAfter time.Duration
	rateLimit                   float64
	prefixes                    bool
	seed                        uint64

	// Shares of calls given each random answer, in [0, 1].
	errorRate, throttle, backend              float64
	failStatus, errorOn200, htmlError, htmlOK float64
	stringBody                                float64

	// Windows of 404 APIG.0101 and 401 APIG.0301 answers, relative to start.
	route404, unauthorized windowsFlag

	// The job catalog the reads list and recovers enable.
	jobs, projects int
	disabledShare  float64
	listShape      string
}

// validate names the first flag with a bad value, and any others.
func (o *simulateOptions) validate() error {
	var errs []error
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"error-rate", o.errorRate}, {"throttle-rate", o.throttle}, {"backend-throttle-rate", o.backend},
		{"fail-status-rate", o.failStatus}, {"error-on-200-rate", o.errorOn200},
		{"html-error-rate", o.htmlError}, {"html-success-rate", o.htmlOK}, {"string-body-rate", o.stringBody},
	} {
		if !(r.v >= 0 && r.v <= 1) { // also catches NaN
			errs = append(errs, fmt.Errorf("%s: %g is not a share between 0 and 1", r.name, r.v))
		}
	}
	if o.rateLimit < 0 {
		errs = append(errs, fmt.Errorf("rate-limit: %g is negative", o.rateLimit))
	}
	if !(o.disabledShare >= 0 && o.disabledShare <= 1) {
		errs = append(errs, fmt.Errorf("disabled-share: %g is not a share between 0 and 1", o.disabledShare))
	}
	if o.jobs < 0 {
		errs = append(errs, fmt.Errorf("jobs: %d is negative", o.jobs))
	}
	if o.projects < 1 {
		errs = append(errs, fmt.Errorf("projects: %d is not 1 or more", o.projects))
	}
	if o.listShape != "sdk" && o.listShape != "result" {
		errs = append(errs, fmt.Errorf("list-shape: %q is not sdk or result", o.listShape))
	}
	return errors.Join(errs...)
}

// simOptions turns the flags into simulator options; windows start relative
// to start.
func (o *simulateOptions) simOptions(start time.Time) []codeartssim.Option {
	opts := []codeartssim.Option{
		codeartssim.WithLatency(o.latency, o.jitter),
		codeartssim.WithErrorRate(o.errorRate, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable),
		codeartssim.WithThrottle(o.throttle),
		codeartssim.WithBackendThrottle(o.backend),
		codeartssim.WithRetryAfter(o.retryAfter),
		codeartssim.WithFailStatus(o.failStatus),
		codeartssim.WithErrorOn200(o.errorOn200),
		codeartssim.WithHTMLErrors(o.htmlError),
		codeartssim.WithHTMLSuccess(o.htmlOK),
		codeartssim.WithStringBodies(o.stringBody),
	}
	for _, w := range o.route404 {
		opts = append(opts, codeartssim.WithRoute404Window(start.Add(w.start), start.Add(w.start+w.dur)))
	}
	for _, w := range o.unauthorized {
		opts = append(opts, codeartssim.WithUnauthorizedWindow(start.Add(w.start), start.Add(w.start+w.dur)))
	}
	if o.rateLimit > 0 {
		opts = append(opts, codeartssim.WithRateLimit(o.rateLimit, max(1, int(o.rateLimit/10))))
	}
	if o.prefixes {
		opts = append(opts, codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
	}
	if o.seed != 0 {
		opts = append(opts, codeartssim.WithSeed(o.seed))
	}
	if o.jobs > 0 {
		opts = append(opts, codeartssim.WithJobs(codeartssim.JobSeed{
			Projects: o.projects, Jobs: o.jobs, Disabled: o.disabledShare, Seed: o.seed, DisabledAt: start,
		}))
	}
	if o.listShape == "result" {
		opts = append(opts, codeartssim.WithListShape(codeartssim.ShapeResult))
	}
	return opts
}

func newSimulateCmd() *cobra.Command {
	var o simulateOptions
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Serve the simulated CodeArts Build API (for local runs with a real NATS)",
		Long: `simulate serves POST /v3/jobs/{job_id}/recover like CodeArts Build, verifying the
SDK's AK/SK signature against HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (or
CLOUD_SDK_AK/CLOUD_SDK_SK), with optional faults: every answer the real API
gives (200 "fail", 200 with an error code, HTML pages from a proxy, error
bodies sent as a JSON string, 404 APIG.0101 while the API is "not published",
401 APIG.0301 windows). GET /stats returns the calls it saw as JSON, with the
faults it gave and the jobs it really recovered. Point the worker at it with
--endpoint http://ADDR.

With --jobs N it also holds a catalog of N build jobs in --projects projects,
a --disabled-share of them disabled, and serves the reads discover and
--verify use: GET /v3/{project_id}/jobs, GET /v1/job/list and
GET /v1/job/{job_id}/check/disable, with real paging (page_size at most 100).
A successful recover enables the job. --list-shape result answers the v3
list as {"result":{"job_list":…}} with zero-based pages, as live answers do.`,
		Example: `  HUAWEICLOUD_SDK_AK=AK HUAWEICLOUD_SDK_SK=SK worker simulate --addr 127.0.0.1:8090 --latency 50ms --error-rate 0.05
  worker simulate --fail-status-rate 0.01 --string-body-rate 0.01 --route-404 10s,4s --route-404 1m,30s
  worker simulate --jobs 20000 --projects 10 --disabled-share 1 --seed 1
  worker run --endpoint http://127.0.0.1:8090 --project-id demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := layerConfig(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			ak, sk := firstEnv("HUAWEICLOUD_SDK_AK", "CLOUD_SDK_AK"), firstEnv("HUAWEICLOUD_SDK_SK", "CLOUD_SDK_SK")
			if ak == "" || sk == "" {
				return fmt.Errorf("credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (the simulator verifies signatures with them)")
			}
			opts := append([]codeartssim.Option{codeartssim.WithCredentials(ak, sk)}, o.simOptions(time.Now())...)
			sim := codeartssim.New(opts...)
			if err := sim.Start(o.addr); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "simulated CodeArts API on %s (stats: %s/stats)\n", sim.URL(), sim.URL())
			<-cmd.Context().Done()
			return sim.Close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8090", "listen address")
	fs.DurationVar(&o.latency, "latency", 0, "answer latency")
	fs.DurationVar(&o.jitter, "jitter", 0, "latency jitter")
	fs.Float64Var(&o.errorRate, "error-rate", 0, "share of calls answered 500/502/503")
	fs.Float64Var(&o.throttle, "throttle-rate", 0, "share of calls answered 429 APIG.0308")
	fs.Float64Var(&o.backend, "backend-throttle-rate", 0, "share of calls answered 500 CB.00060211")
	fs.Float64Var(&o.failStatus, "fail-status-rate", 0, `share of calls answered 200 {"status":"fail"} (not applied)`)
	fs.Float64Var(&o.errorOn200, "error-on-200-rate", 0, "share of calls answered 200 with error_code CB.00060101 (not applied)")
	fs.Float64Var(&o.htmlError, "html-error-rate", 0, "share of calls answered with nginx's 502 HTML page")
	fs.Float64Var(&o.htmlOK, "html-success-rate", 0, "share of calls answered with a proxy's 200 HTML page (not applied)")
	fs.Float64Var(&o.stringBody, "string-body-rate", 0, "share of JSON error answers whose body is sent as a JSON string")
	fs.Var(&o.route404, "route-404", "answer every request 404 APIG.0101 (API not published) from START after start for DURATION, e.g. 10s,4s (repeatable)")
	fs.Var(&o.unauthorized, "unauthorized", "answer every recover 401 APIG.0301 from START after start for DURATION, e.g. 10s,4s (repeatable)")
	fs.DurationVar(&o.retryAfter, "retry-after", time.Second, "Retry-After sent with throttles")
	fs.Float64Var(&o.rateLimit, "rate-limit", 0, "admitted calls per second; above it 429 APIG.0308 (0 = none)")
	fs.BoolVar(&o.prefixes, "prefix-outcomes", true, "job ids starting 400/403/404/422 answer that status")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0 = random; the job catalog takes 1)")
	fs.IntVar(&o.jobs, "jobs", 0, "build jobs in the simulated catalog (0 = none)")
	fs.IntVar(&o.projects, "projects", 1, "projects the catalog's jobs are spread over")
	fs.Float64Var(&o.disabledShare, "disabled-share", 0.3, "share of the catalog's jobs disabled")
	fs.StringVar(&o.listShape, "list-shape", "sdk", `shape of GET /v3/{project_id}/jobs: sdk ({"jobs":…}, pages from 1) or result ({"result":{"job_list":…}}, pages from 0)`)
	return cmd
}

// relWindow is a time window relative to the simulator's start.
type relWindow struct{ start, dur time.Duration }

// windowsFlag is a repeatable START,DURATION flag (e.g. 10s,4s: from 10 s
// after start for 4 s). It is not a pflag.SliceValue on purpose: the comma
// belongs to one window, so an environment variable holds one window.
type windowsFlag []relWindow

func (f *windowsFlag) String() string {
	parts := make([]string, len(*f))
	for i, w := range *f {
		parts[i] = w.start.String() + "," + w.dur.String()
	}
	return strings.Join(parts, " ")
}

func (f *windowsFlag) Set(v string) error {
	s, d, ok := strings.Cut(v, ",")
	if !ok {
		return fmt.Errorf("%q is not START,DURATION (e.g. 10s,4s)", v)
	}
	start, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || start < 0 {
		return fmt.Errorf("start %q is not a duration of 0 or more (e.g. 10s)", s)
	}
	dur, err := time.ParseDuration(strings.TrimSpace(d))
	if err != nil || dur <= 0 {
		return fmt.Errorf("duration %q is not a positive duration (e.g. 4s)", d)
	}
	*f = append(*f, relWindow{start, dur})
	return nil
}

func (f *windowsFlag) Type() string { return "START,DURATION" }

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
