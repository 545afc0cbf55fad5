package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process this benchmark started, with line-based stdout.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan struct{} // closed once Wait returned
	state  *os.ProcessState
	err    error
}

func spawn(name, path string, args, env []string, stderr io.Writer) (*child, error) {
	cmd := exec.CommandContext(context.Background(), path, args...) //nolint:gosec // our own binary or the one -worker-bin names
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.exited)
	}()
	return c, nil
}

// expect waits for the next stdout line starting with prefix and returns
// the rest of it.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				<-c.exited
				return "", fmt.Errorf("%s exited before %q: %w", c.name, prefix, c.err)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q within %s", c.name, prefix, timeout)
		}
	}
}

func (c *child) expectInt(prefix string, timeout time.Duration) (int64, error) {
	s, err := c.expect(prefix, timeout)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

func (c *child) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// wait waits for the exit; after timeout it kills the process.
func (c *child) wait(timeout time.Duration) error {
	select {
	case <-c.exited:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not exit within %s; killed", c.name, timeout)
	}
	var ee *exec.ExitError
	if c.err != nil && !errors.As(c.err, &ee) {
		return c.err
	}
	return nil
}

// cpu returns the exited child's CPU time (user + system, µs), from wait4.
func (c *child) cpu() int64 {
	if c.state == nil {
		return 0
	}
	if ru, ok := c.state.SysUsage().(*syscall.Rusage); ok && ru != nil {
		return tvMicros(ru.Utime) + tvMicros(ru.Stime)
	}
	return int64(c.state.UserTime()+c.state.SystemTime()) / 1e3
}

// peakRSS returns the running child's peak resident set (VmHWM, KiB).
// wait4's ru_maxrss is no use here: a child started with vfork+exec keeps
// the parent's high-water mark at the exec, and this parent holds the
// nats-server.
func (c *child) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return v
		}
	}
	return 0
}

// procCPU reads a running process's CPU time (user + system, µs) from
// /proc/PID/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func procCPU(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after ")" are fixed.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return (utime + stime) * 10_000
}

// workerProc is one worker process: `worker run` (external: ready once its
// /readyz answers 200, stopped with SIGTERM, CPU read from /proc), or this
// binary as "_worker" (builtin: a go/stop handshake on stdin, CPU from its
// own getrusage, plus its timings).
type workerProc struct {
	c        *child
	external bool
	readyURL string // external: its /readyz
	started  int64  // CPU µs at the start of the drain
}

// workerUsage is the worker CPU (µs) spent in the drain, the process's
// peak RSS (KiB) and, from a builtin worker, its timings.
type workerUsage struct {
	cpuMicros int64
	rssKiB    int64
	timings   *workerTimings // nil: the process was killed, or is external
}

// ready waits until the worker can work: "ready" from a builtin one, a 200
// from an external one's /readyz.
func (w *workerProc) ready(timeout time.Duration) error {
	if !w.external {
		_, err := w.c.expect("ready", timeout)
		return err
	}
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-w.c.exited:
			return fmt.Errorf("worker exited before it was ready (see its log): %w", w.c.err)
		default:
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
	return fmt.Errorf("worker not ready within %s", timeout)
}

// begin starts the drain clock: a builtin worker starts its pool now; an
// external one already runs.
func (w *workerProc) begin() error {
	if w.external {
		w.started = procCPU(w.c.cmd.Process.Pid)
		return nil
	}
	if err := w.c.send("go"); err != nil {
		return err
	}
	v, err := w.c.expectInt("started ", 10*time.Second)
	w.started = v
	return err
}

func (w *workerProc) stop() (workerUsage, error) {
	u := workerUsage{rssKiB: w.c.peakRSS()} // the drain is over: the peak is behind us
	if w.external {
		u.cpuMicros = procCPU(w.c.cmd.Process.Pid) - w.started
		_ = w.c.cmd.Process.Signal(syscall.SIGTERM)
		_ = w.c.stdin.Close()
		return u, w.c.wait(60 * time.Second)
	}
	if err := w.c.send("stop"); err != nil {
		return u, err
	}
	v, err := w.c.expectInt("stopped ", 30*time.Second)
	if err != nil {
		return u, err
	}
	u.cpuMicros = v - w.started
	if s, err := w.c.expect("timings ", 5*time.Second); err == nil {
		var t workerTimings
		if json.Unmarshal([]byte(s), &t) == nil {
			u.timings = &t
		}
	}
	_ = w.c.stdin.Close()
	return u, w.c.wait(60 * time.Second)
}

func (w *workerProc) kill() workerUsage {
	u := workerUsage{rssKiB: w.c.peakRSS()}
	if w.external {
		u.cpuMicros = procCPU(w.c.cmd.Process.Pid) - w.started
	}
	_ = w.c.cmd.Process.Kill()
	_ = w.c.wait(30 * time.Second)
	if !w.external {
		u.cpuMicros = w.c.cpu() - w.started
	}
	return u
}
