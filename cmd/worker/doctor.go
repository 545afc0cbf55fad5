package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Statuses of a doctor check. Only fail makes the exit code 1 (warn too
// with --strict).
const (
	checkOK   = "ok"
	checkWarn = "warn"
	checkFail = "fail"
	checkSkip = "skip"
)

// doctorCheck is one line of `worker doctor`: what was checked, what was
// seen, and the fix when it is not ok.
type doctorCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorReport is `worker doctor -o json|yaml`.
type doctorReport struct {
	// OK is true when no check failed (and, with --strict, none warned).
	OK     bool          `json:"ok"`
	Checks []doctorCheck `json:"checks"`
}

// doctorClock is doctor's local clock. Tests replace it to inject a skew.
var doctorClock = time.Now

// doctorOptions are run's flags (so doctor checks what run would use, from
// the same flags, RECOVER_* variables and --config file) and doctor's own.
type doctorOptions struct {
	run        runOptions
	out        outputFlags
	project    string
	monitorURL string
	timeout    time.Duration
	maxSkew    time.Duration
	strict     bool
}

func newDoctorCmd() *cobra.Command {
	o := &doctorOptions{run: defaultRunOptions(), timeout: 5 * time.Second, maxSkew: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration before running: credentials, region, clock, NATS permissions, streams",
		Long: `doctor checks, with the flags, RECOVER_* variables and --config file that
'worker run' would use, and says what to fix:
  configuration   every flag's value
  credentials     found in the SDK's chain (never printed)
  CodeArts API    one authenticated read per region (list one build job of the
                  project, GET /v3/{project_id}/jobs): a wrong AK/SK, region or
                  endpoint, or a missing IAM permission shows here, not on the
                  first recover
  clock           skew against the API's Date header and the NATS server (the
                  API refuses signatures made with a clock far off)
  NATS            connection, TLS, JetStream and the account's limits
  permissions     each NATS permission the worker needs (publish, consumer
                  info, fetch, ack, pause, advisories, KV), probed with
                  messages the server answers without acting on them
  streams         the streams and the consumer against what 'worker run'
                  would create (retention, storage, replicas, sizes, duplicate
                  window, AckWait, MaxDeliver)
  sync_interval   with --nats-monitor-url, whether the server fsyncs every
                  write (sync_interval: always)

Exit code: 0 when nothing failed (warnings are printed), 1 when a check
failed (or warned, with --strict), 2 for a command line it cannot parse.`,
		Example: `  worker doctor
  worker doctor --config /etc/recover/worker.yaml -o json
  worker doctor --nats-monitor-url http://nats:8222 --strict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := o.out.resolve()
			if err != nil {
				return err
			}
			// run's flags read RECOVER_* as run does; doctor's own do not
			// (RECOVER_STRICT in a shell must not change a check).
			if err := layerEnv(cmd.Flags(), runFlagNames(), os.LookupEnv); err != nil {
				return usageError(err)
			}
			if o.timeout <= 0 {
				return usageError(fmt.Errorf("check-timeout: %s is not positive", o.timeout))
			}
			if o.maxSkew <= 0 {
				return usageError(fmt.Errorf("max-clock-skew: %s is not positive", o.maxSkew))
			}
			rep := o.check(cmd.Context())
			if format == outputTable {
				err = printDoctor(cmd.OutOrStdout(), rep)
			} else {
				err = writeStructured(cmd.OutOrStdout(), format, rep)
			}
			if err != nil {
				return err
			}
			if !rep.OK {
				return &exitError{code: exitFailure, err: errors.New("doctor: " + failedSummary(rep))}
			}
			return nil
		},
	}
	o.run.addFlags(cmd.Flags())
	fs := cmd.Flags()
	addOutputFlags(cmd, &o.out)
	fs.StringVar(&o.project, "codearts-project", "", "CodeArts project whose job list the API check reads (default: --project-id)")
	fs.StringVar(&o.monitorURL, "nats-monitor-url", "", "NATS monitoring endpoint (e.g. http://nats:8222) to read the server's sync_interval from")
	fs.DurationVar(&o.timeout, "check-timeout", o.timeout, "how long each check may wait for an answer")
	fs.DurationVar(&o.maxSkew, "max-clock-skew", o.maxSkew, "clock skew that fails the clock checks (above 30s they warn)")
	fs.BoolVar(&o.strict, "strict", false, "exit 1 on warnings too")
	return cmd
}

// runFlagNames are the names of `worker run`'s flags.
func runFlagNames() []string {
	o := defaultRunOptions()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o.addFlags(fs)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

// skewWarn is the clock skew doctor warns about: result and dead-letter
// times and the fleet's beats compare clocks of different machines.
const skewWarn = 30 * time.Second

// check runs every check in order; a check whose prerequisite failed is
// skipped and says so.
func (o *doctorOptions) check(ctx context.Context) (rep doctorReport) {
	add := func(c doctorCheck) { rep.Checks = append(rep.Checks, c) }
	defer func() {
		rep.OK = true
		for _, c := range rep.Checks {
			if c.Status == checkFail || o.strict && c.Status == checkWarn {
				rep.OK = false
			}
		}
	}()

	if err := o.run.validate(); err != nil {
		add(doctorCheck{Name: "configuration", Status: checkFail, Detail: err.Error(),
			Fix: "correct the flag, RECOVER_* variable or --config key named above"})
		return rep
	}
	add(doctorCheck{Name: "configuration", Status: checkOK, Detail: "flags, environment and --config file are valid"})

	o.checkAPI(ctx, add)
	o.checkNATS(ctx, add)
	return rep
}

// checkAPI checks the credentials and, per region, the API and its clock.
func (o *doctorOptions) checkAPI(ctx context.Context, add func(doctorCheck)) {
	api := o.run.api
	if api.Credentials.IsZero() {
		creds, err := codearts.LoadCredentials()
		if err != nil {
			add(doctorCheck{Name: "credentials", Status: checkFail, Detail: "none found in the SDK's provider chain",
				Fix: "set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or CLOUD_SDK_AK/CLOUD_SDK_SK, the SDK profile file, CCE pod identity or ECS metadata)"})
			add(doctorCheck{Name: "CodeArts API", Status: checkSkip, Detail: "no credentials to sign with"})
			return
		}
		api.Credentials = creds
	}
	if api.ProjectID == "" {
		api.ProjectID = api.Credentials.ProjectID
	}
	add(doctorCheck{Name: "credentials", Status: checkOK, Detail: "found: " + api.Credentials.String()})
	api.Timeout = min(api.Timeout, o.timeout)
	api.Logger = zap.NewNop()
	client, err := codearts.NewClient(api)
	if err != nil {
		add(doctorCheck{Name: "CodeArts API", Status: checkFail, Detail: err.Error(), Fix: "correct --region, --regions or --endpoint"})
		return
	}
	defer func() { _ = client.Close() }()
	regions := client.Regions() // the default region first
	slices.Sort(regions[1:])
	for _, region := range regions {
		start := doctorClock()
		chk, err := client.Check(ctx, region, o.project)
		end := doctorClock()
		skew := time.Duration(0)
		if !chk.Date.IsZero() {
			skew = chk.Date.Sub(start.Add(end.Sub(start) / 2))
		}
		add(apiCheck(chk, err, skew, o.maxSkew))
		if !chk.Date.IsZero() {
			add(skewCheck("clock vs the API ("+region+")", skew, o.maxSkew,
				"the API's Date header"))
		}
	}
}

// apiCheck says what the API's answer to the read means.
func apiCheck(chk codearts.Check, err error, skew, maxSkew time.Duration) doctorCheck {
	where := fmt.Sprintf("region %s at %s", chk.Region, chk.Endpoint)
	c := doctorCheck{Name: "CodeArts API (" + chk.Region + ")"}
	if err == nil {
		c.Status, c.Detail = checkOK, fmt.Sprintf("%s: credentials accepted, job list read (HTTP %d)", where, chk.StatusCode)
		return c
	}
	var apiErr *codearts.APIError
	if !errors.As(err, &apiErr) {
		c.Status, c.Detail = checkFail, fmt.Sprintf("%s: %v", where, err)
		c.Fix = "check that this host reaches the endpoint (DNS, proxy: HTTPS_PROXY/NO_PROXY, egress NetworkPolicy, TLS); --endpoint overrides it"
		if errors.Is(err, codearts.ErrUnknownRegion) {
			c.Fix = "use a region CodeArts Build is offered in (--region, --regions)"
		}
		return c
	}
	seen := fmt.Sprintf("%s: HTTP %d %s %s (request id %s)", where, apiErr.StatusCode, apiErr.ErrorCode, apiErr.ErrorMsg, orUnknown(apiErr.RequestID))
	c.Detail = seen
	c.Status = checkFail
	switch code := apiErr.ErrorCode; {
	case apiErr.StatusCode == http.StatusUnauthorized:
		c.Fix = "the AK/SK pair is wrong, expired or locked after repeated failures, or the token is for another region: " +
			"correct HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (the secret the chart mounts), then run doctor again"
		if skew > maxSkew || skew < -maxSkew {
			c.Fix = fmt.Sprintf("this clock is %s off the API's, and the API refuses signatures made with a clock that far off: "+
				"fix the clock first (NTP/chrony on the node)", skew.Round(time.Second))
		}
	case code != "" && !gateway(code) && apiErr.StatusCode != http.StatusTooManyRequests && apiErr.StatusCode < 500:
		// CodeArts itself answered (CB.…, DEV.…): the gateway authenticated
		// the read and routed it; only the project it names is not one this
		// user may list.
		c.Status, c.Detail = checkOK, fmt.Sprintf("%s: credentials accepted (CodeArts answered HTTP %d %s about project %s; "+
			"--codearts-project names a project to list)", where, apiErr.StatusCode, code, chk.Project)
		c.Fix = ""
	case apiErr.StatusCode == http.StatusNotFound && (code == "APIG.0101" || code == ""):
		c.Fix = "the API is not published at this endpoint: the region is wrong (--region) or --endpoint points elsewhere; " +
			"CodeArts Build's endpoint is codearts-build.<region>.myhuaweicloud.com"
	case apiErr.StatusCode == http.StatusForbidden:
		c.Fix = "the IAM user lacks a CodeArts Build permission or the project is unavailable in this region: grant the user " +
			"CodeArts Build access (e.g. the CodeArts Build Developer policy) in IAM, or correct --project-id"
	case apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode >= 500:
		c.Status = checkWarn
		c.Fix = "the API is throttling or unavailable right now; the credentials could not be confirmed: run doctor again later"
	default:
		c.Fix = "see the error code in the CodeArts Build API reference; the worker would pause on it"
	}
	return c
}

// gateway reports whether an error code is the API Gateway's (it answers
// before, or instead of, CodeArts: authentication, routing, throttling).
func gateway(code string) bool {
	return strings.HasPrefix(code, "APIG.") || strings.HasPrefix(code, "APIGW.")
}

// skewCheck judges a clock skew (positive: the other clock is ahead).
func skewCheck(name string, skew, maxSkew time.Duration, against string) doctorCheck {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	dir := "ahead of"
	if skew > 0 {
		dir = "behind"
	}
	d := fmt.Sprintf("this clock is %s %s %s", abs.Round(time.Second), dir, against)
	if abs < time.Second {
		d = "this clock is within a second of " + against
	}
	c := doctorCheck{Name: name, Status: checkOK, Detail: d}
	switch {
	case abs > maxSkew:
		c.Status = checkFail
		c.Fix = fmt.Sprintf("synchronise this machine's clock (NTP/chrony on the node): beyond %s signatures are refused "+
			"(the API allows 15 minutes) and dead-letter and result times are wrong", maxSkew)
	case abs > skewWarn:
		c.Status = checkWarn
		c.Fix = "synchronise this machine's clock (NTP/chrony on the node)"
	}
	return c
}

// checkNATS checks the connection, JetStream, permissions, streams,
// consumer and the server's sync setting.
func (o *doctorOptions) checkNATS(ctx context.Context, add func(doctorCheck)) {
	cfg := o.run.nats
	cfg.Name = "codearts-recover-worker doctor"
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	conn, err := queue.Connect(cctx, cfg)
	cancel()
	url := queue.RedactURL(cfg.URL)
	if err != nil {
		c := doctorCheck{Name: "NATS connection", Status: checkFail, Detail: err.Error(),
			Fix: "check --nats-url (NATS_URL), that the server runs and this host reaches it (Service, NetworkPolicy), and the NATS credentials and TLS flags"}
		if errors.Is(err, context.DeadlineExceeded) {
			c.Detail = fmt.Sprintf("%s: not reachable within %s", url, o.timeout)
		}
		add(c)
		add(doctorCheck{Name: "NATS permissions", Status: checkSkip, Detail: "not connected"})
		add(doctorCheck{Name: "streams", Status: checkSkip, Detail: "not connected"})
		return
	}
	defer closeConn(conn)
	add(doctorCheck{Name: "NATS connection", Status: checkOK,
		Detail: fmt.Sprintf("%s, server %s (nats-server %s)", conn.NC.ConnectedUrlRedacted(), conn.NC.ConnectedServerName(), conn.NC.ConnectedServerVersion())})
	add(tlsCheck(conn, doctorClock()))

	jctx, cancel := context.WithTimeout(ctx, o.timeout)
	acct, err := conn.JS.AccountInfo(jctx)
	cancel()
	if err != nil {
		add(doctorCheck{Name: "JetStream", Status: checkFail, Detail: err.Error(),
			Fix: "enable JetStream on the server (jetstream block) and for this user's account, and allow this user to publish to $JS.API.INFO"})
		return
	}
	add(limitsCheck(acct))

	perms := conn.CheckPermissions(ctx, o.timeout)
	add(permissionsCheck(perms))
	denied := map[string]bool{}
	for _, p := range perms {
		denied[p.Subject] = !p.Allowed && p.Err == ""
	}

	// The server's clock is the time stamp of the request stream's info.
	jctx, cancel = context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if cfg := conn.Config(); !denied["$JS.API.STREAM.INFO."+cfg.Stream] {
		start := doctorClock()
		if ts, err := conn.ServerTime(jctx); err == nil {
			end := doctorClock()
			add(skewCheck("clock vs NATS", ts.Sub(start.Add(end.Sub(start)/2)), o.maxSkew, "the NATS server's clock"))
		} else {
			d := "the server's time is read from the request stream's info: " + err.Error()
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				d = "the server's time is read from the request stream's info, and there is no request stream yet"
			}
			add(doctorCheck{Name: "clock vs NATS", Status: checkSkip, Detail: d})
		}
	}

	sctx, cancel := context.WithTimeout(ctx, 4*o.timeout)
	defer cancel()
	o.checkStreams(sctx, conn, denied, add)
	o.checkSync(ctx, add)
}

// tlsCheck says whether the link to NATS is encrypted and for how long the
// server's certificate is valid.
func tlsCheck(conn *queue.Conn, now time.Time) doctorCheck {
	c := doctorCheck{Name: "NATS TLS"}
	st, err := conn.NC.TLSConnectionState()
	if err != nil {
		c.Status, c.Detail = checkOK, "not encrypted (the URL is nats://, the server does not require TLS)"
		return c
	}
	c.Status, c.Detail = checkOK, "encrypted, "+tls.VersionName(st.Version)
	if len(st.PeerCertificates) > 0 {
		left := st.PeerCertificates[0].NotAfter.Sub(now)
		c.Detail += fmt.Sprintf(", server certificate valid until %s", st.PeerCertificates[0].NotAfter.UTC().Format(time.RFC3339))
		if left < 14*24*time.Hour {
			c.Status, c.Fix = checkWarn, "renew the NATS server's certificate: it expires within 14 days"
		}
	}
	return c
}

// limitsCheck shows the account's JetStream limits and warns when the
// storage is nearly full (new requests would be refused).
func limitsCheck(a *jetstream.AccountInfo) doctorCheck {
	limit := func(n int64) string {
		if n < 0 {
			return "unlimited"
		}
		return fmt.Sprint(n)
	}
	c := doctorCheck{Name: "JetStream", Status: checkOK, Detail: fmt.Sprintf(
		"enabled; account uses %d streams (limit %s), %d consumers (limit %s), %d bytes of file storage (limit %s)",
		a.Streams, limit(int64(a.Limits.MaxStreams)), a.Consumers, limit(int64(a.Limits.MaxConsumers)), a.Store, limit(a.Limits.MaxStore))}
	if a.Limits.MaxStore > 0 && float64(a.Store) > 0.9*float64(a.Limits.MaxStore) {
		c.Status, c.Fix = checkWarn, "the account's file storage is over 90% used: raise max_file_store or purge old streams, else new requests are refused"
	}
	return c
}

// permissionsCheck sums the probes up: one line, the denied ones named.
func permissionsCheck(perms []queue.Permission) doctorCheck {
	var denied, unknown []string
	for _, p := range perms {
		switch {
		case p.Allowed:
		case p.Err != "":
			unknown = append(unknown, fmt.Sprintf("%s (%s: %s)", p.What, p.Subject, p.Err))
		default:
			denied = append(denied, fmt.Sprintf("%s (publish %s)", p.What, p.Subject))
		}
	}
	c := doctorCheck{Name: "NATS permissions", Status: checkOK,
		Detail: fmt.Sprintf("%d of %d allowed", len(perms)-len(denied)-len(unknown), len(perms))}
	if len(unknown) > 0 {
		c.Status = checkWarn
		c.Detail += "; no answer for: " + strings.Join(unknown, "; ")
		c.Fix = "run doctor again; a server that answers nothing may be overloaded"
	}
	if len(denied) > 0 {
		c.Status = checkFail
		c.Detail += "; denied: " + strings.Join(denied, "; ")
		c.Fix = "allow this NATS user to publish to the subjects named above (and to subscribe to its reply inboxes); " +
			"e2e/README.md lists every permission the worker needs"
	}
	return c
}

// checkStreams compares the streams and the consumer with what run would
// create, reusing the drift `worker status` shows.
func (o *doctorOptions) checkStreams(ctx context.Context, conn *queue.Conn, denied map[string]bool, add func(doctorCheck)) {
	cfg := conn.Config()
	if denied["$JS.API.STREAM.INFO."+cfg.Stream] {
		add(doctorCheck{Name: "streams", Status: checkSkip, Detail: "this user may not read the request stream (see NATS permissions)"})
		return
	}
	names := []string{cfg.Stream, cfg.DLQStream}
	if cfg.Results() {
		names = append(names, cfg.ResultStream)
	}
	names = append(names, cfg.AdvisoryStream())
	var missing []string
	for _, name := range names {
		if _, err := conn.JS.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = append(missing, name)
		} else if err != nil {
			add(doctorCheck{Name: "streams", Status: checkFail, Detail: fmt.Sprintf("stream %s: %v", name, err),
				Fix: "allow this user to read the worker's streams ($JS.API.STREAM.INFO.*)"})
			return
		}
	}
	if len(missing) > 0 {
		c := doctorCheck{Name: "streams", Status: checkOK, Detail: "missing: " + strings.Join(missing, ", ") + "; 'worker run' creates them at start"}
		if cfg.NoCreate {
			c.Status, c.Detail = checkFail, "missing: "+strings.Join(missing, ", ")+" (--no-create: the worker will wait for them)"
			c.Fix = "create them as 'worker run' would (run it once without --no-create as a user who may), or point --stream/--dlq-stream at the right ones"
		}
		add(c)
	}
	o.checkOverlaps(ctx, conn, add)
	drift, err := conn.StreamDrift(ctx)
	if err != nil {
		add(doctorCheck{Name: "stream settings", Status: checkFail, Detail: err.Error()})
		return
	}
	if len(drift) == 0 && len(missing) < len(names) {
		add(doctorCheck{Name: "stream settings", Status: checkOK, Detail: "the existing streams are as 'worker run' would create them"})
	}
	for _, d := range drift {
		c := doctorCheck{Name: "stream " + d.Stream + " " + d.Setting, Status: checkWarn,
			Detail: fmt.Sprintf("%s, the worker would create %s", d.Have, d.Want)}
		switch {
		case d.Stream == cfg.Stream && d.Setting == "retention":
			c.Status = checkFail
			c.Detail += ": the worker refuses to start (an acknowledged request would stay in the stream)"
			c.Fix = "NATS cannot change retention in place: move the messages elsewhere, delete the stream and let the worker create it, or point --stream at a work-queue stream"
		case d.Setting == "subjects":
			c.Status, c.Detail = checkOK, fmt.Sprintf("%s lacks subject %s; the worker adds it at start", d.Stream, d.Want)
		case d.Updatable:
			c.Fix = "kept as it is; 'worker run --update-streams' changes it to the worker's"
		default:
			c.Fix = "NATS cannot change it in place: recreate the stream to change it"
		}
		add(c)
	}

	if denied["$JS.API.CONSUMER.INFO."+cfg.Stream+"."+cfg.Consumer] {
		add(doctorCheck{Name: "consumer", Status: checkSkip, Detail: "this user may not read the consumer (see NATS permissions)"})
		return
	}
	cdrift, exists, err := conn.ConsumerDrift(ctx)
	switch {
	case err != nil:
		add(doctorCheck{Name: "consumer", Status: checkFail, Detail: err.Error(),
			Fix: "allow this user consumer info on the request stream ($JS.API.CONSUMER.INFO." + cfg.Stream + "." + cfg.Consumer + ")"})
	case !exists && cfg.NoCreate:
		add(doctorCheck{Name: "consumer", Status: checkFail, Detail: fmt.Sprintf("%s on %s is missing (--no-create)", cfg.Consumer, cfg.Stream),
			Fix: "create it as 'worker run' would, or correct --consumer"})
	case !exists:
		add(doctorCheck{Name: "consumer", Status: checkOK, Detail: fmt.Sprintf("%s on %s is missing; 'worker run' creates it at start", cfg.Consumer, cfg.Stream)})
	case len(cdrift) == 0:
		add(doctorCheck{Name: "consumer", Status: checkOK, Detail: fmt.Sprintf("%s on %s is as 'worker run' would create it", cfg.Consumer, cfg.Stream)})
	}
	for _, d := range cdrift {
		c := doctorCheck{Name: "consumer " + d.Setting, Status: checkOK,
			Detail: fmt.Sprintf("%s is %s, 'worker run' sets %s at start", d.Stream, d.Have, d.Want)}
		if cfg.NoCreate {
			c.Status = checkWarn
			c.Detail = fmt.Sprintf("%s is %s, the worker's flags say %s (--no-create: the server's value is used)", d.Stream, d.Have, d.Want)
			c.Fix = "update the consumer, or pass the server's value to the worker's flag"
		}
		add(c)
	}
}

// checkOverlaps fails for a subject of the worker that a stream of another
// purpose stores (queue.SubjectOverlap): NATS refuses the second stream,
// and what the first catches goes to the wrong readers.
func (o *doctorOptions) checkOverlaps(ctx context.Context, conn *queue.Conn, add func(doctorCheck)) {
	overlaps, err := conn.SubjectOverlaps(ctx)
	if err != nil {
		add(doctorCheck{Name: "stream subjects", Status: checkFail, Detail: err.Error()})
		return
	}
	for _, ov := range overlaps {
		consequence := "NATS refuses a second stream on the same subjects, so the stream for " + ov.Role + " cannot be created"
		if ov.Stream == conn.Config().Stream {
			consequence = "the workers would take each of them as a recover request (and dead-letter it again)"
		}
		add(doctorCheck{Name: "stream subjects", Status: checkFail,
			Detail: fmt.Sprintf("%s (%s) is stored by stream %s, the stream of %s, through its subject %s: %s",
				ov.Subject, ov.Role, ov.Stream, ov.Holds, ov.Pattern, consequence),
			Fix: fmt.Sprintf("remove %s from the subjects of stream %s (nats stream edit %s), or give the worker subjects it does not cover (--subject, --dlq-subject, --result-subject)",
				ov.Pattern, ov.Stream, ov.Stream)})
	}
}

// checkSync reads the server's sync_interval when a monitoring URL is
// given: the README asks for sync_interval: always, so an acknowledged
// request survives a power cut.
func (o *doctorOptions) checkSync(ctx context.Context, add func(doctorCheck)) {
	if o.monitorURL == "" {
		add(doctorCheck{Name: "sync_interval", Status: checkSkip,
			Detail: "not visible over the client connection; pass --nats-monitor-url http://<nats>:8222 to read it"})
		return
	}
	s, err := queue.ReadSyncSetting(ctx, &http.Client{Timeout: o.timeout}, o.monitorURL)
	switch {
	case err != nil:
		add(doctorCheck{Name: "sync_interval", Status: checkWarn, Detail: err.Error(),
			Fix: "check --nats-monitor-url (the server's http_port, usually 8222)"})
	case s.Always:
		add(doctorCheck{Name: "sync_interval", Status: checkOK, Detail: fmt.Sprintf("server %s: always (every write is fsynced)", s.Server)})
	default:
		add(doctorCheck{Name: "sync_interval", Status: checkWarn,
			Detail: fmt.Sprintf("server %s: every %s (a power cut of a node can lose requests JetStream acknowledged)", s.Server, s.Interval),
			Fix:    "set sync_interval: always in the jetstream block of the servers that hold the request stream"})
	}
}

// statusColors are the ANSI colours of the statuses on a terminal.
var statusColors = map[string]string{checkOK: "\x1b[32m", checkWarn: "\x1b[33m", checkFail: "\x1b[31m"}

// printDoctor writes one line per check, the fix under it; the status is
// coloured on a terminal (useColor).
func printDoctor(w io.Writer, rep doctorReport) error {
	var b strings.Builder
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.Name))
	}
	color := useColor(w)
	for _, c := range rep.Checks {
		status := fmt.Sprintf("%-4s", strings.ToUpper(c.Status))
		if code, ok := statusColors[c.Status]; ok && color {
			status = code + status + "\x1b[0m"
		}
		fmt.Fprintf(&b, "%s  %-*s  %s\n", status, width, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(&b, "      %-*s  fix: %s\n", width, "", c.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// failedSummary names the checks that failed.
func failedSummary(rep doctorReport) string {
	var names []string
	for _, c := range rep.Checks {
		if c.Status == checkFail || c.Status == checkWarn {
			names = append(names, c.Name+" ("+c.Status+")")
		}
	}
	return strings.Join(names, ", ")
}
