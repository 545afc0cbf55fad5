package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process this benchmark started. Its stdout is read line by
// line (the simulator prints its URL there); its stderr goes to a log.
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
	// A benchmark killed midway takes its workers and simulator with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
			select {
			case c.lines <- sc.Text():
			default: // nobody waits for it: a worker's stray output
			}
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

func (c *child) signal(sig os.Signal) { _ = c.cmd.Process.Signal(sig) }

func (c *child) done() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// wait waits for the exit; after timeout it kills the process. An exit
// status other than 0 is not an error here (a SIGKILLed worker has one).
func (c *child) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
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

func tvMicros(tv syscall.Timeval) int64 { return int64(tv.Sec)*1e6 + int64(tv.Usec) } //nolint:unconvert // Timeval fields differ by platform

// peakRSS returns the running child's peak resident set (VmHWM, KiB), 0
// once it is gone. wait4's ru_maxrss is no use here: a child started with
// vfork+exec keeps the parent's high-water mark at the exec, and this
// parent holds the nats-server.
func (c *child) peakRSS() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(data), "\n") {
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
