package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// doctorEnv starts NATS (streams and consumer created) and the simulator,
// puts the simulator's credentials in the SDK's environment variables, and
// returns the flags that point doctor at both.
func doctorEnv(t *testing.T) (*testenv.Env, []string) {
	t.Helper()
	env, nats := toolEnv(t, testenv.Options{})
	t.Setenv("HUAWEICLOUD_SDK_AK", testenv.AK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testenv.SK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testenv.ProjectID)
	return env, append(nats, "--endpoint", env.Sim.URL(), "--check-timeout", "10s")
}

// doctorJSON runs doctor -o json and decodes its report.
func doctorJSON(t *testing.T, flags []string, more ...string) (doctorReport, cliResult) {
	t.Helper()
	r := cli(t, "", withFlags([]string{"doctor", "-o", "json"}, flags, more...)...)
	var rep doctorReport
	require.NoError(t, json.Unmarshal([]byte(r.out), &rep), "stdout: %s\nstderr: %s", r.out, r.err)
	return rep, r
}

// check returns the named check of rep.
func check(t *testing.T, rep doctorReport, name string) doctorCheck {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no such check", "%q in %+v", name, rep.Checks)
	return doctorCheck{}
}

func TestDoctorCorrectSetup(t *testing.T) {
	env, flags := doctorEnv(t)
	r := cli(t, "", withFlags([]string{"doctor"}, flags)...)
	require.Zero(t, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	for _, want := range []string{"OK    configuration", "credentials accepted", "NATS permissions", "20 of 20 allowed",
		"clock vs the API (cn-north-4)", "clock vs NATS", "SKIP  sync_interval"} {
		require.Contains(t, r.out, want)
	}
	require.NotContains(t, r.out, "FAIL")
	require.NotContains(t, r.out+r.err, testenv.SK, "no secret printed")
	require.Positive(t, env.Sim.Stats().Calls, "the simulator saw the read")

	// The probes stored, fetched and deleted nothing.
	info, err := env.Conn.StreamInfo(context.Background(), queue.DefaultStream)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)

	// -o yaml is the same report as -o json.
	rep, _ := doctorJSON(t, flags)
	require.True(t, rep.OK)
	y := cli(t, "", withFlags([]string{"doctor", "-o", "yaml"}, flags)...)
	require.Zero(t, y.code, y.err)
	var fromYAML doctorReport
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(y.out), &doc))
	b, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &fromYAML))
	require.Len(t, fromYAML.Checks, len(rep.Checks))
	require.True(t, fromYAML.OK)

	// run's settings come from RECOVER_*/NATS_URL as run reads them;
	// doctor's own flags read no environment.
	t.Setenv("NATS_URL", env.Queue.URL)
	t.Setenv("RECOVER_ENDPOINT", env.Sim.URL())
	t.Setenv("RECOVER_OUTPUT", "xml")
	r = cli(t, "", "doctor")
	require.Zero(t, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	require.Contains(t, r.out, env.Sim.URL())
}

func TestDoctorFindsWhatIsWrong(t *testing.T) {
	tests := []struct {
		giveName  string
		giveSetup func(t *testing.T, env *testenv.Env, flags []string) []string
		wantCheck string
		wantIn    []string // in the check's detail and fix
		wantRe    string   // matches the detail
	}{
		{
			giveName: "wrong AK/SK",
			giveSetup: func(t *testing.T, _ *testenv.Env, flags []string) []string {
				t.Setenv("HUAWEICLOUD_SDK_SK", "not-the-secret-key-0000")
				return flags
			},
			wantCheck: "CodeArts API (cn-north-4)",
			wantIn:    []string{"HTTP 401", "APIG.0301", "AK/SK pair is wrong"},
		},
		{
			giveName: "wrong region (the route answers 404)",
			giveSetup: func(_ *testing.T, env *testenv.Env, flags []string) []string {
				env.Sim.Configure(codeartssim.WithRoute404(true))
				return flags
			},
			wantCheck: "CodeArts API (cn-north-4)",
			wantIn:    []string{"HTTP 404", "APIG.0101", "not published at this endpoint", "--region"},
		},
		{
			giveName: "request stream with limits retention",
			giveSetup: func(t *testing.T, env *testenv.Env, flags []string) []string {
				ctx := context.Background()
				require.NoError(t, env.Conn.JS.DeleteStream(ctx, queue.DefaultStream))
				_, err := env.Conn.JS.CreateStream(ctx, jetstream.StreamConfig{
					Name: queue.DefaultStream, Subjects: []string{queue.DefaultSubject}, Retention: jetstream.LimitsPolicy,
				})
				require.NoError(t, err)
				return flags
			},
			wantCheck: "stream CODEARTS_RECOVER retention",
			wantIn:    []string{"limits, the worker would create workqueue", "refuses to start", "cannot change retention in place"},
		},
		{
			// A request stream made by hand on codearts.build.recover.>
			// catches the dead letters and the result events: the workers
			// would take each dead letter as a request.
			giveName: "request stream catches the dead letters",
			giveSetup: func(t *testing.T, env *testenv.Env, flags []string) []string {
				ctx := context.Background()
				for _, name := range []string{queue.DefaultDLQStream, queue.DefaultResultStream} {
					if err := env.Conn.JS.DeleteStream(ctx, name); err != nil {
						require.ErrorIs(t, err, jetstream.ErrStreamNotFound, name)
					}
				}
				_, err := env.Conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
					Name: queue.DefaultStream, Subjects: []string{queue.DefaultSubject, queue.DefaultSubject + ".>"}, Retention: jetstream.WorkQueuePolicy,
				})
				require.NoError(t, err, "the request stream on %s.>", queue.DefaultSubject)
				return flags
			},
			wantCheck: "stream subjects",
			wantIn: []string{queue.DefaultDLQSubject + " (dead letters) is stored by stream CODEARTS_RECOVER", "through its subject " + queue.DefaultSubject + ".>",
				"take each of them as a recover request", "remove " + queue.DefaultSubject + ".> from the subjects of stream CODEARTS_RECOVER", "--dlq-subject"},
		},
		{
			giveName: "clock 10 minutes behind the API",
			giveSetup: func(t *testing.T, _ *testenv.Env, flags []string) []string {
				doctorClock = func() time.Time { return time.Now().Add(-10 * time.Minute) }
				t.Cleanup(func() { doctorClock = time.Now })
				return flags
			},
			wantCheck: "clock vs the API (cn-north-4)",
			// The Date header counts whole seconds.
			wantIn: []string{"behind the API's Date header", "synchronise this machine's clock"},
			wantRe: `this clock is (9m5\ds|10m0s|10m1s) behind`,
		},
		{
			giveName: "clock 10 minutes ahead of NATS",
			giveSetup: func(t *testing.T, _ *testenv.Env, flags []string) []string {
				doctorClock = func() time.Time { return time.Now().Add(10 * time.Minute) }
				t.Cleanup(func() { doctorClock = time.Now })
				return flags
			},
			wantCheck: "clock vs NATS",
			wantIn:    []string{"ahead of the NATS server's clock", "NTP"},
			wantRe:    `this clock is (9m5\ds|10m0s|10m1s) ahead`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.giveName, func(t *testing.T) {
			env, flags := doctorEnv(t)
			flags = tt.giveSetup(t, env, flags)
			rep, r := doctorJSON(t, flags)
			require.Equal(t, exitFailure, r.code, r.err)
			require.False(t, rep.OK)
			c := check(t, rep, tt.wantCheck)
			require.Equal(t, checkFail, c.Status, "%+v", c)
			require.NotEmpty(t, c.Fix)
			for _, want := range tt.wantIn {
				require.Contains(t, c.Detail+" "+c.Fix, want)
			}
			if tt.wantRe != "" {
				require.Regexp(t, tt.wantRe, c.Detail)
			}
			require.Contains(t, r.err, tt.wantCheck, "the error line names the failed check")
			require.NotContains(t, r.out+r.err, testenv.SK, "no secret printed")
		})
	}
}

// A NATS user that may not read the consumer: the permission is named with
// its subject, and the checks that need it are skipped, not waited on.
func TestDoctorNATSUserWithoutConsumerRights(t *testing.T) {
	noToolLeaks(t)
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "worker", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.CONSUMER.INFO.>"}},
		}}},
	}
	ns, err := server.NewServer(opts)
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	require.True(t, ns.ReadyForConnections(10*time.Second))
	sim := codeartssim.New(codeartssim.WithCredentials(testenv.AK, testenv.SK))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	t.Setenv("HUAWEICLOUD_SDK_AK", testenv.AK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testenv.SK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testenv.ProjectID)

	rep, r := doctorJSON(t, []string{"--nats-url", ns.ClientURL(), "--nats-user", "worker", "--nats-password", "pw",
		"--endpoint", sim.URL(), "--check-timeout", "10s"})
	require.Equal(t, exitFailure, r.code, r.err)
	c := check(t, rep, "NATS permissions")
	require.Equal(t, checkFail, c.Status, "%+v", c)
	require.Contains(t, c.Detail, "read the consumer (consumer info) (publish $JS.API.CONSUMER.INFO.CODEARTS_RECOVER.recover-worker)")
	require.Contains(t, c.Detail, "advisories: read the MAX_DELIVERIES consumer")
	require.NotContains(t, c.Detail, "fetch requests", "what the user may do is not listed as denied")
	require.Contains(t, c.Fix, "allow this NATS user to publish")
	require.Equal(t, checkSkip, check(t, rep, "consumer").Status)
	require.Equal(t, checkOK, check(t, rep, "CodeArts API (cn-north-4)").Status)
	require.NotContains(t, r.out+r.err, "pw\"", "no NATS password printed")
}

func TestDoctorUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"doctor", "-o", "xml"},
		{"doctor", "--check-timeout", "0s"},
		{"doctor", "--max-clock-skew", "-1m"},
		{"doctor", "--no-such-flag"},
		{"doctor", "extra-arg"},
		{"no-such-command"},
		{"status", "--json", "-o", "yaml"},
	} {
		r := cli(t, "", args...)
		require.Equal(t, exitUsage, r.code, "%v: %s", args, r.err)
		require.True(t, strings.HasPrefix(r.err, "worker: "), r.err)
	}
}

// version prints one line, or one object with -o json|yaml (the version
// as the build stamped it: `make build` and goreleaser set main.version).
func TestVersionOutput(t *testing.T) {
	old := version
	version = "v1.2.3"
	t.Cleanup(func() { version = old })
	r := cli(t, "", "version")
	require.Zero(t, r.code, r.err)
	require.Regexp(t, `^worker v1\.2\.3 \(commit \S+\) go\S+ \S+/\S+\n$`, r.out)

	for _, args := range [][]string{{"version", "-o", "json"}, {"version", "--json"}} {
		r = cli(t, "", args...)
		require.Zero(t, r.code, r.err)
		var v versionInfo
		require.NoError(t, json.Unmarshal([]byte(r.out), &v), r.out)
		require.Equal(t, "v1.2.3", v.Version)
		require.NotEmpty(t, v.GoVersion)
		require.NotEmpty(t, v.OS)
	}
	r = cli(t, "", "version", "-o", "yaml")
	require.Zero(t, r.code, r.err)
	require.Contains(t, r.out, "version: v1.2.3\n")
	require.Contains(t, r.out, "go_version: go")
}

// Colours only on a terminal, and never with NO_COLOR: the console log's
// levels and doctor's statuses.
func TestNoColor(t *testing.T) {
	rep := doctorReport{Checks: []doctorCheck{{Name: "x", Status: checkFail, Detail: "d", Fix: "f"}}}
	render := func() string {
		var b strings.Builder
		require.NoError(t, printDoctor(&b, rep))
		log, err := newLogger(&b, "console", "info")
		require.NoError(t, err)
		log.Warn("hello")
		return b.String()
	}
	require.NotContains(t, render(), "\x1b[", "not a terminal: no colour")

	old := isTerminal
	isTerminal = func(any) bool { return true }
	t.Cleanup(func() { isTerminal = old })
	t.Setenv("NO_COLOR", "")
	require.Contains(t, render(), "\x1b[31mFAIL\x1b[0m", "a terminal: colour")
	t.Setenv("NO_COLOR", "1")
	require.NotContains(t, render(), "\x1b[", "NO_COLOR: no colour")
}

// What each answer of the API's read means, and its fix.
func TestDoctorAPIAnswers(t *testing.T) {
	chk := codearts.Check{Region: "cn-north-4", Endpoint: "https://codearts-build.cn-north-4.myhuaweicloud.com", Project: "p"}
	apiErr := func(status int, code string) error {
		return fmt.Errorf("list jobs: %w", &codearts.APIError{StatusCode: status, ErrorCode: code, ErrorMsg: "m", RequestID: "r"})
	}
	tests := []struct {
		give       error
		giveSkew   time.Duration
		wantStatus string
		wantIn     string
	}{
		{give: nil, wantStatus: checkOK, wantIn: "credentials accepted"},
		{give: apiErr(401, "APIG.0301"), wantStatus: checkFail, wantIn: "AK/SK pair is wrong"},
		{give: apiErr(401, "APIG.0301"), giveSkew: -20 * time.Minute, wantStatus: checkFail, wantIn: "fix the clock first"},
		{give: apiErr(404, "APIG.0101"), wantStatus: checkFail, wantIn: "--region"},
		{give: apiErr(403, "APIG.0302"), wantStatus: checkFail, wantIn: "IAM user lacks"},
		{give: apiErr(403, "DEV.00000003"), wantStatus: checkOK, wantIn: "CodeArts answered HTTP 403 DEV.00000003 about project p"},
		{give: apiErr(400, "CB.00060200"), wantStatus: checkOK, wantIn: "credentials accepted"},
		{give: apiErr(429, "APIG.0308"), wantStatus: checkWarn, wantIn: "throttling"},
		{give: apiErr(500, "CB.00060211"), wantStatus: checkWarn, wantIn: "could not be confirmed"},
		{give: errors.New("dial tcp: no such host"), wantStatus: checkFail, wantIn: "HTTPS_PROXY"},
	}
	for _, tt := range tests {
		c := apiCheck(chk, tt.give, tt.giveSkew, 5*time.Minute)
		require.Equal(t, tt.wantStatus, c.Status, "%v: %+v", tt.give, c)
		require.Contains(t, c.Detail+" "+c.Fix, tt.wantIn, "%v", tt.give)
	}
}
