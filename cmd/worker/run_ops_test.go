package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// Secrets the tests configure; none may appear in any log line.
const (
	testAK        = "TESTAKEXAMPLE0000001"
	testSK        = "test-secret-key-never-logged-5f3a9c"
	testProjectID = "0123456789abcdef0123456789abcdef"
	natsUser      = "worker"
	natsPassword  = "nats-password-never-logged-8d1e"
)

// syncBuffer is a log sink safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// parseRun returns run options parsed from args, as `worker run` would.
// runDefaults is the flag set of `worker run` as the binary has it.
func runDefaults() *pflag.FlagSet {
	o := defaultRunOptions()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o.addFlags(fs)
	return fs
}

func parseRun(t *testing.T, args ...string) *runOptions {
	t.Helper()
	o := defaultRunOptions()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o.addFlags(fs)
	// No page unless the test asks: the default address is shared by
	// every test (and engineer) on this machine.
	require.NoError(t, fs.Parse(append([]string{"--ui-addr="}, args...)))
	return &o
}

func TestStartupLineRedactsSecrets(t *testing.T) {
	o := parseRun(t,
		"--nats-url", "nats://"+natsUser+":"+natsPassword+"@127.0.0.1:4222,nats://other:4222",
		"--nats-user", natsUser, "--nats-password", natsPassword, "--nats-token", "tok-"+natsPassword,
		"--nats-creds", "/var/run/nats/user.creds", "--concurrency", "48")
	var buf syncBuffer
	log, err := newLogger(&buf, "json", "info")
	require.NoError(t, err)
	log.Info("worker starting", o.startupFields()...)

	out := buf.String()
	require.NotContains(t, out, natsPassword)
	require.Contains(t, out, `"nats_password":"[redacted]"`)
	require.Contains(t, out, `"nats_token":"[redacted]"`)
	require.Contains(t, out, `"nats_url":"nats://redacted@127.0.0.1:4222,nats://other:4222"`)
	require.Contains(t, out, `"nats_creds":"/var/run/nats/user.creds"`, "paths to secrets are not secrets")
	require.Contains(t, out, `"concurrency":"48"`)
	require.Contains(t, out, `"version":`)
}

// startNATS starts a JetStream server that requires user/password.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		Username: natsUser, Password: natsPassword, NoSigs: true, NoLog: true,
	})
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// TestRunOpsAndLogs runs the whole service against a real NATS and the
// simulated API: the ops endpoints follow its life, the metrics count what
// it did, and no secret reaches the log.
func TestRunOpsAndLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and the simulator")
	}
	verifyNoLeaks(t)
	ns := startNATS(t)
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	t.Setenv("HUAWEICLOUD_SDK_AK", testAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testSK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testProjectID)

	natsURL := strings.Replace(ns.ClientURL(), "nats://", "nats://"+natsUser+":"+natsPassword+"@", 1)
	o := parseRun(t, "--nats-url", natsURL, "--endpoint", sim.URL(), "--http-addr", "127.0.0.1:0",
		"--ui-addr", "127.0.0.1:0", "--allowed-hosts", "recover-worker.ops.svc",
		"--ack-wait", "5s", "--drain-timeout", "5s", "--concurrency", "4")
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := o.open(ctx, &logs)
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	base := "http://" + s.ops.Addr()
	page := "http://" + s.uiLn.Addr()

	// Two listeners: the ops one serves health, readiness and metrics
	// only, the page has its own; both answer 421 to a name they do not
	// serve (a rebound DNS name), and serve an allowed one.
	for _, u := range []string{base + "/healthz", base + "/metrics", page + "/", page + "/api/status"} {
		require.Equal(t, http.StatusMisdirectedRequest, hostGet(t, u, "evil.example").code, u)
		require.NotEqual(t, http.StatusMisdirectedRequest, hostGet(t, u, "recover-worker.ops.svc:8080").code, u)
	}
	require.Equal(t, http.StatusNotFound, scrape(t, base+"/").code, "no page on the ops listener")
	require.Equal(t, http.StatusNotFound, scrape(t, base+"/api/status").code, "no page API on the ops listener")
	require.Equal(t, http.StatusOK, scrape(t, page+"/api/status").code)
	require.Equal(t, http.StatusNotFound, scrape(t, page+"/metrics").code, "no metrics on the page's listener")

	publish(t, ctx, natsURL, "a0000000000000000000000000000001", "a0000000000000000000000000000002", "a0000000000000000000000000000003")

	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, base+"/metrics").body, `codearts_recover_deliveries_total{outcome="recovered",reason=""} 3`)
	}, 20*time.Second, 20*time.Millisecond)
	r := scrape(t, base+"/readyz")
	require.Equal(t, 200, r.code, r.body)
	metrics := scrape(t, base+"/metrics").body
	require.Contains(t, metrics, `codearts_recover_api_calls_total{class="success",code="200"} 3`)
	require.Contains(t, metrics, "codearts_recover_build_info{")
	require.Contains(t, metrics, `codearts_recover_breaker_state{region="cn-north-4",state="closed"} 1`)
	require.Contains(t, metrics, `codearts_recover_pause_state{region="cn-north-4",state="none"} 1`)
	// What `promtool check metrics` says of the running worker's scrape
	// (the same linter, promlint): names, units, counter suffixes, help.
	lint, err := promlint.New(strings.NewReader(metrics)).Lint()
	require.NoError(t, err)
	require.Empty(t, lint, "promtool check metrics on the worker's /metrics")

	// The API rejects the credentials: paused, not ready (but alive), and
	// the metric says so; fixed credentials bring it back.
	sim.SetCredentials(testAK, "rotated-"+testSK)
	publish(t, ctx, natsURL, "a0000000000000000000000000000004")
	require.Eventually(t, func() bool {
		r := scrape(t, base+"/readyz")
		return r.code == 503 && strings.Contains(r.body, "paused: credentials rejected")
	}, 20*time.Second, 20*time.Millisecond)
	paused := scrape(t, base+"/metrics").body
	require.Contains(t, paused, `codearts_recover_pause_state{region="cn-north-4",state="credentials"} 1`)
	require.Contains(t, paused, `codearts_recover_pause_state{region="cn-north-4",state="none"} 0`)
	require.Equal(t, 200, scrape(t, base+"/healthz").code)
	sim.SetCredentials(testAK, testSK)
	require.Eventually(t, func() bool { return scrape(t, base+"/readyz").code == 200 }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, base+"/metrics").body, `codearts_recover_deliveries_total{outcome="recovered",reason=""} 4`)
	}, 20*time.Second, 20*time.Millisecond)

	cancel()
	require.NoError(t, <-done)
	// Shut down but not yet closed: alive, not ready, and it says why.
	r = scrape(t, base+"/readyz")
	require.Equal(t, 503, r.code)
	require.Contains(t, r.body, "draining: shutting down")
	require.Equal(t, 200, scrape(t, base+"/healthz").code)
	s.Close()
	closed = true

	out := logs.String()
	require.Contains(t, out, `"msg":"worker starting"`)
	require.Contains(t, out, `"msg":"worker started"`)
	require.Contains(t, out, `"msg":"worker stopped","drained":0,"handed_back":0`)
	for _, secret := range []string{natsPassword, testSK} {
		require.NotContains(t, out, secret)
	}
	require.NotContains(t, out, testAK, "the AK is shown shortened only")
}

// publish enqueues job ids through a connection of its own.
func publish(t *testing.T, ctx context.Context, natsURL string, ids ...string) {
	t.Helper()
	pub, err := queue.Connect(ctx, queue.Config{URL: natsURL})
	require.NoError(t, err)
	for _, id := range ids {
		_, err := pub.Publish(ctx, queue.DefaultSubject, id, nil, []byte(id))
		require.NoError(t, err)
	}
	require.NoError(t, pub.Close(time.Second))
}

// TestHealthyWhileNATSUnreachable: a worker started before its NATS is
// alive (no restart storm) and not ready, saying why.
func TestHealthyWhileNATSUnreachable(t *testing.T) {
	verifyNoLeaks(t)
	t.Setenv("HUAWEICLOUD_SDK_AK", testAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testSK)
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	o := parseRun(t, "--nats-url", "nats://"+natsAddr, "--endpoint", "http://127.0.0.1:1", "--http-addr", httpAddr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		s, err := o.open(ctx, io.Discard)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	base := "http://" + httpAddr
	require.Eventually(t, func() bool { return tryGet(base+"/healthz") == 200 }, 10*time.Second, 10*time.Millisecond)
	r := scrape(t, base+"/readyz")
	require.Equal(t, 503, r.code)
	require.Contains(t, r.body, "startup: connecting to NATS")

	cancel()
	require.Error(t, <-done)
	require.NotEqual(t, 200, tryGet(base+"/healthz"), "the ops server is shut down with the rest")
}

// verifyNoLeaks checks, after every other cleanup of t, that the test left
// no goroutine behind. (cmd/worker has no TestMain of its own yet.)
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

type httpResult struct {
	code int
	body string
}

func scrape(t *testing.T, url string) httpResult {
	t.Helper()
	resp, err := noKeepAlive().Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResult{resp.StatusCode, string(b)}
}

// hostGet GETs url with the Host header set to host.
func hostGet(t *testing.T, url, host string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := noKeepAlive().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResult{resp.StatusCode, string(b)}
}

// tryGet returns the status, or 0 when nothing answered.
func tryGet(url string) int {
	resp, err := noKeepAlive().Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// noKeepAlive is a client that leaves no idle connection (nor goroutine).
func noKeepAlive() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// worker run --verify --skip-enabled wires the state reads: of four jobs,
// the two disabled are recovered and verified, the two enabled end
// already_enabled without a recover.
func TestRunVerifyAndSkipEnabled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and the simulator")
	}
	verifyNoLeaks(t)
	ns := startNATS(t)
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK),
		codeartssim.WithJobs(codeartssim.JobSeed{Projects: 1, Jobs: 4, Disabled: 0.5, Seed: 8}))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	t.Setenv("HUAWEICLOUD_SDK_AK", testAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testSK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testProjectID)

	natsURL := strings.Replace(ns.ClientURL(), "nats://", "nats://"+natsUser+":"+natsPassword+"@", 1)
	o := parseRun(t, "--nats-url", natsURL, "--endpoint", sim.URL(), "--http-addr", "127.0.0.1:0",
		"--verify", "--skip-enabled", "--drain-timeout", "5s", "--concurrency", "4")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := o.open(ctx, io.Discard)
	require.NoError(t, err)
	defer s.Close()
	var ids []string
	for _, j := range sim.Jobs() {
		ids = append(ids, j.ID)
	}
	publish(t, ctx, natsURL, ids...)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.ops.Addr()
	require.Eventually(t, func() bool {
		m := scrape(t, base+"/metrics").body
		return strings.Contains(m, `codearts_recover_deliveries_total{outcome="recovered",reason=""} 2`) &&
			strings.Contains(m, `codearts_recover_deliveries_total{outcome="already_enabled",reason=""} 2`)
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Empty(t, sim.DisabledJobs())
	require.Equal(t, int64(2), sim.Stats().Recovered, "no recover for the enabled jobs")
	require.Equal(t, int64(6), sim.Stats().Reads[codeartssim.ReadDisable], "a read before each job, and one after each recover")
}
