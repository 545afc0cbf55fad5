package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Credentials the simulator verifies and the workers sign with. They are
// made up for the benchmark and never leave loopback.
const (
	benchAK        = "BENCHAKEXAMPLE000001"
	benchSK        = "bench-secret-key-not-a-real-one-0001"
	benchProjectID = "0123456789abcdef0123456789abcdef"
)

// The consumer settings the orchestrator creates before it enqueues, and
// every worker is started with, so that no worker changes the consumer.
const (
	benchMaxDeliver    = 5
	benchMaxAckPending = 1000
)

// peer is a kind of worker process: the product's `worker run` of some
// binary and environment, or the naive peer.
type peer struct {
	name  string
	bin   string
	env   []string // added to the environment (e.g. GOGC=100)
	naive bool
}

// setup is what every worker of a run is given.
type setup struct {
	natsURL, simURL string
	concurrency     int
	ackWait         time.Duration
	rateLimit       float64
	logLevel        string
	extra           []string // -worker-args
	env             []string // credentials, SSL_CERT_FILE
	self            string   // this binary, for the naive peer
	logDir          string
	prefix          string // of the log files: scenario-peer-run
}

// proc is one worker process of a drain.
type proc struct {
	c        *child
	readyURL string
	log      *os.File
	// cpu0 is its CPU (µs) when the drain started; 0 when it started later.
	cpu0 int64
	// cpu is its CPU over the drain, known once it ended or the drain did.
	cpu      int64
	measured bool
	rssKiB   int64 // highest VmHWM seen
}

// fleet is the worker processes of one drain, live ones in start order.
type fleet struct {
	p     peer
	s     setup
	live  []*proc
	gone  []*proc // stopped or killed during the drain
	count int     // processes started
}

// start starts n workers and waits until each is ready.
func (f *fleet) start(n int) error {
	var started []*proc
	for range n {
		w, err := f.spawn()
		if err != nil {
			return err
		}
		f.live = append(f.live, w)
		started = append(started, w)
	}
	for _, w := range started {
		if err := w.ready(30 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) spawn() (*proc, error) {
	f.count++
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	log, err := os.Create(filepath.Join(f.s.logDir, fmt.Sprintf("%s-worker-%d.log", f.s.prefix, f.count)))
	if err != nil {
		return nil, err
	}
	s := f.s
	var bin string
	var args []string
	if f.p.naive {
		bin = s.self
		args = []string{roleNaive, "-nats", s.natsURL, "-endpoint", s.simURL, "-concurrency", strconv.Itoa(s.concurrency),
			"-ack-wait", s.ackWait.String(), "-http-addr", addr, "-log-level", s.logLevel}
	} else {
		bin = f.p.bin
		args = append([]string{"run", "--nats-url", s.natsURL, "--endpoint", s.simURL, "--project-id", benchProjectID,
			"--concurrency", strconv.Itoa(s.concurrency), "--ack-wait", s.ackWait.String(),
			"--max-deliver", strconv.Itoa(benchMaxDeliver), "--max-ack-pending", strconv.Itoa(benchMaxAckPending),
			"--rate-limit", fmt.Sprint(s.rateLimit), "--http-addr", addr, "--log-level", s.logLevel}, s.extra...)
	}
	c, err := spawn(fmt.Sprintf("%s worker %d", f.p.name, f.count), bin, args, append(append([]string{}, s.env...), f.p.env...), log)
	if err != nil {
		_ = log.Close()
		return nil, err
	}
	return &proc{c: c, log: log, readyURL: "http://" + addr + "/readyz"}, nil
}

// ready waits until the worker's /readyz answers 200.
func (w *proc) ready(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if w.c.done() {
			return fmt.Errorf("%s exited before it was ready (see its log %s): %w", w.c.name, w.log.Name(), w.c.err)
		}
		resp, err := client.Get(w.readyURL) //nolint:noctx // loopback, bounded by the client timeout
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s (see its log %s)", w.c.name, timeout, w.log.Name())
}

// begin marks the start of the drain: CPU from here on counts.
func (f *fleet) begin() {
	for _, w := range f.live {
		w.cpu0 = procCPU(w.c.cmd.Process.Pid)
	}
}

// apply performs one change of the fleet.
func (f *fleet) apply(c change) error {
	switch c.kind {
	case scaleUp:
		return f.start(c.count)
	case scaleDown:
		for range min(c.count, len(f.live)) {
			w := f.live[len(f.live)-1]
			f.live = f.live[:len(f.live)-1]
			w.c.signal(syscall.SIGTERM)
			f.gone = append(f.gone, w)
		}
	case restart, crash:
		for range min(c.count, len(f.live)) {
			w := f.live[0]
			f.live = f.live[1:]
			if c.kind == crash {
				w.c.signal(syscall.SIGKILL)
			} else {
				w.c.signal(syscall.SIGTERM)
			}
			f.gone = append(f.gone, w)
			if err := f.start(1); err != nil {
				return err
			}
		}
	}
	return nil
}

// all is every worker process of the drain.
func (f *fleet) all() []*proc {
	return append(append(make([]*proc, 0, len(f.live)+len(f.gone)), f.live...), f.gone...)
}

// sample records the peak RSS of every running worker.
func (f *fleet) sample() {
	for _, w := range f.all() {
		if !w.c.done() {
			w.rssKiB = max(w.rssKiB, w.c.peakRSS())
		}
	}
}

// stop ends the drain: the live workers' CPU is read now (their shutdown is
// not the drain's), then every worker is stopped and waited for; a worker
// that ended during the drain counts to its exit.
func (f *fleet) stop() error {
	f.sample()
	for _, w := range f.live {
		w.cpu = procCPU(w.c.cmd.Process.Pid) - w.cpu0
		w.measured = true
		w.c.signal(syscall.SIGTERM)
	}
	var errs []error
	for _, w := range f.all() {
		if err := w.c.wait(60 * time.Second); err != nil {
			errs = append(errs, err)
		}
		if !w.measured {
			w.cpu = w.c.cpu() - w.cpu0
			w.measured = true
		}
		_ = w.log.Close()
	}
	return errors.Join(errs...)
}

// close kills whatever is left after an error.
func (f *fleet) close() {
	for _, w := range f.all() {
		if !w.c.done() {
			_ = w.c.cmd.Process.Kill()
			_ = w.c.wait(10 * time.Second)
		}
		_ = w.log.Close()
	}
}

// usage is the fleet's CPU over the drain (µs) and its highest per-process
// peak RSS (KiB).
func (f *fleet) usage() (cpu, rss int64) {
	for _, w := range f.all() {
		cpu += w.cpu
		rss = max(rss, w.rssKiB)
	}
	return cpu, rss
}

func (f *fleet) logBytes() int64 {
	var n int64
	for _, w := range f.all() {
		if st, err := os.Stat(w.log.Name()); err == nil {
			n += st.Size()
		}
	}
	return n
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}
