// Package testenv starts the real pieces for integration tests: an
// in-process nats-server with JetStream in a temporary directory, the
// CodeArts simulator on loopback, the real SDK client signing with AK/SK,
// and a pool wired as cmd/worker wires it. Everything stops in t.Cleanup.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go.uber.org/goleak"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Credentials the simulator accepts and the client signs with.
const (
	AK        = "TESTAKEXAMPLE0000001"
	SK        = "test-secret-key-never-logged-5f3a9c"
	ProjectID = "0123456789abcdef0123456789abcdef"
)

// Env is a running test system.
type Env struct {
	T     testing.TB
	NATS  *queue.Embedded
	Queue queue.Config
	Conn  *queue.Conn
	Sim   *codeartssim.Server
	API   *codearts.Client
}

// Options tune New.
type Options struct {
	// Queue overrides queue settings (URL is filled in).
	Queue queue.Config
	// API overrides client settings (Endpoint and credentials are filled in).
	API codearts.Config
	// Sim are simulator options (credentials are added).
	Sim []codeartssim.Option
}

// New starts NATS and the simulator and connects a client to each.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(ns.Shutdown)

	sim := codeartssim.New(append([]codeartssim.Option{codeartssim.WithCredentials(AK, SK)}, o.Sim...)...)
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })

	e := &Env{T: t, NATS: ns, Sim: sim}
	e.Queue = o.Queue
	e.Queue.URL = ns.URL()
	if e.Queue.AckWait == 0 {
		e.Queue.AckWait = 5 * time.Second
	}
	if e.Queue.FetchWait == 0 {
		e.Queue.FetchWait = time.Second
	}
	e.Conn = e.Connect()

	api := o.API
	api.Endpoint = sim.URL()
	api.Credentials = codearts.Credentials{AK: AK, SK: SK, ProjectID: ProjectID}
	api.ProjectID = ProjectID
	if api.Timeout == 0 {
		api.Timeout = 5 * time.Second
	}
	e.API, err = codearts.NewClient(api)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.API.Close() })
	return e
}

// Connect opens a new NATS connection (a separate "process") with the
// streams and consumer ensured.
func (e *Env) Connect() *queue.Conn { return e.ConnectURL(e.Queue.URL) }

// ConnectURL is Connect through another URL (e.g. a Proxy).
func (e *Env) ConnectURL(url string) *queue.Conn {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc := e.Queue
	qc.URL = url
	c, err := queue.Connect(ctx, qc)
	require.NoError(e.T, err)
	e.T.Cleanup(func() { _ = c.Close(time.Second) })
	require.NoError(e.T, c.Ensure(ctx))
	return c
}

// Pool builds a pool on conn (nil = e.Conn) as worker run does
// (wire.NewPool): AckWait and MaxDeliver from the bound consumer, the
// max-deliveries sweep, requeued hand-backs, the consumer pause, a limiter.
// o.Recoverer replaces the API client (a fault the simulator cannot give).
func (e *Env) Pool(conn *queue.Conn, cfg worker.Config, opts ...wire.PoolOptions) *wire.Pool {
	e.T.Helper()
	if conn == nil {
		conn = e.Conn
	}
	if cfg.Name == "" {
		cfg.Name = "test-worker"
	}
	var o wire.PoolOptions
	if len(opts) > 0 {
		o = opts[0]
	} else {
		o.ProcessScope = true // one process: no fleet to share the rate with
	}
	p, err := wire.NewPool(context.Background(), conn, e.API, cfg, o)
	require.NoError(e.T, err)
	return p
}

// Running is a pool running in the background.
type Running struct {
	cancel context.CancelFunc
	done   chan error
}

// Start runs p until Stop (or the test ends).
func (e *Env) Start(p interface{ Run(context.Context) error }) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	e.T.Cleanup(func() { r.Stop(e.T) })
	return r
}

// Stop begins the pool's shutdown and waits for Run to return.
func (r *Running) Stop(t testing.TB) {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(t, err)
			close(r.done)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("pool did not stop within 60s")
	}
}

// JobID returns a random valid job id starting with prefix.
func JobID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := prefix + hex.EncodeToString(b)
	return id[:32]
}

// Publish enqueues body on the request subject with msgID (may be empty).
func (e *Env) Publish(body, msgID string) {
	e.T.Helper()
	_, err := e.Conn.Publish(context.Background(), e.Conn.Config().Subject, msgID, nil, []byte(body))
	require.NoError(e.T, err)
}

// DeadLetters reads every record in the dead-letter stream.
func (e *Env) DeadLetters() []worker.DeadLetter {
	e.T.Helper()
	var out []worker.DeadLetter
	err := e.Conn.Scan(context.Background(), e.Conn.Config().DLQStream, func(m queue.StoredMsg) error {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return fmt.Errorf("dead letter %d: %w", m.Seq, err)
		}
		out = append(out, d)
		return nil
	})
	require.NoError(e.T, err)
	return out
}

// Results reads every result event.
func (e *Env) Results() []worker.Result {
	e.T.Helper()
	var out []worker.Result
	err := e.Conn.Scan(context.Background(), e.Conn.Config().ResultStream, func(m queue.StoredMsg) error {
		var r worker.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return fmt.Errorf("result %d: %w", m.Seq, err)
		}
		out = append(out, r)
		return nil
	})
	require.NoError(e.T, err)
	return out
}

// Pending is the number of requests still in the request stream.
func (e *Env) Pending() uint64 {
	e.T.Helper()
	info, err := e.Conn.StreamInfo(context.Background(), e.Conn.Config().Stream)
	require.NoError(e.T, err)
	return info.State.Msgs
}

// DLQCount is the number of dead letters stored.
func (e *Env) DLQCount() uint64 {
	e.T.Helper()
	info, err := e.Conn.StreamInfo(context.Background(), e.Conn.Config().DLQStream)
	require.NoError(e.T, err)
	return info.State.Msgs
}

// Eventually waits up to timeout for cond, polling; it fails the test with
// msg and the last state if cond never holds. Arguments that are functions
// (func() int, func() uint64, func() any) are called then, not when the
// wait begins.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(msg, evalArgs(args)...))
		case <-tick.C:
		}
	}
}

// evalArgs evaluates the message arguments that are functions (rec.Terminal,
// env.Pending): a count taken when the wait began says nothing about why it
// failed.
func evalArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch f := a.(type) {
		case func() int:
			out[i] = f()
		case func() uint64:
			out[i] = f()
		case func() any:
			out[i] = f()
		default:
			out[i] = a
		}
	}
	return out
}

// Recorder is a worker.Observer that records outcomes for assertions.
type Recorder struct {
	mu       sync.Mutex
	outcomes []worker.Outcome
	calls    []worker.Call
	callAt   []time.Time
	retries  map[string]int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{retries: map[string]int{}} }

// Outcome records o.
func (r *Recorder) Outcome(o worker.Outcome) {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
}

// Call records c.
func (r *Recorder) Call(c worker.Call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.callAt = append(r.callAt, time.Now())
	r.mu.Unlock()
}

// CallRate is the rate of API calls with status between the first and the
// last one recorded (the steady state, without start-up and tail).
func (r *Recorder) CallRate(status int) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first, last time.Time
	n := 0
	for i, c := range r.calls {
		if c.Status != status {
			continue
		}
		if n == 0 {
			first = r.callAt[i]
		}
		last = r.callAt[i]
		n++
	}
	if n < 2 {
		return 0
	}
	return float64(n-1) / last.Sub(first).Seconds()
}

// Retry records a retry cause.
func (r *Recorder) Retry(cause string, _ time.Duration) {
	r.mu.Lock()
	r.retries[cause]++
	r.mu.Unlock()
}

// Count returns how many outcomes of kind were recorded.
func (r *Recorder) Count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.outcomes {
		if o.Kind == kind {
			n++
		}
	}
	return n
}

// Terminal counts recovered + dead-lettered outcomes.
func (r *Recorder) Terminal() int {
	return r.Count(worker.OutcomeRecovered) + r.Count(worker.OutcomeDeadLettered) + r.Count(worker.OutcomeAlreadyEnabled)
}

// Outcomes returns a copy of the recorded outcomes.
func (r *Recorder) Outcomes() []worker.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]worker.Outcome(nil), r.outcomes...)
}

// Retries returns the count of retries with cause.
func (r *Recorder) Retries(cause string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries[cause]
}

// HasPrefix reports whether id has one of prefixes.
func HasPrefix(id string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// LeakOptions are the goroutines a leak check of a package that calls the
// API through the SDK ignores: the HTTP client's idle keep-alive
// connections, which close on their own.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	}
}
