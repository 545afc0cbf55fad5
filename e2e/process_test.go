//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries under test: bin/worker (make build) and
// bin/nats-server (the pinned version, installed from the Go module proxy).
// E2E_BIN overrides it.
func binDir() string {
	if d := os.Getenv("E2E_BIN"); d != "" {
		return d
	}
	d, _ := filepath.Abs("../bin")
	return d
}

func workerBin() string { return filepath.Join(binDir(), "worker") }
func natsBin() string   { return filepath.Join(binDir(), "nats-server") }

// proc is one running OS process whose stdout and stderr go to a log file.
// It is stopped by PID only: Kill sends SIGKILL to this process and nothing
// else.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *os.File
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // Wait's result, valid after done
}

// startProc starts bin with args and env (nil inherits the test's), its
// output appended to logPath.
func startProc(name, logPath, bin string, args, env []string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	_, _ = fmt.Fprintf(out, "=== e2e: start %s at %s: %s %s\n", name, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	// If the test binary dies (a -timeout panic), take the child with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to this process (if it is still running).
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies as well, but be explicit
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for the process to exit; it
// returns the exit error (nil = exit 0) or an error if it did not exit.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		if p.err == nil {
			return fmt.Errorf("%s had already exited with status 0", p.name)
		}
		return fmt.Errorf("%s had already exited: %w", p.name, p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

// peakRSS is the process's peak resident set size (VmHWM), in bytes.
func (p *proc) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.pid())
}

// freePorts returns n distinct free loopback ports. They are free when
// returned; the OS could hand one to someone else before we bind it, which
// on a loopback-only test machine does not happen in practice.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// waitFor polls cond every 50ms until it holds or timeout passes; it
// reports whether cond held. It never sleeps as synchronisation: it returns
// as soon as the condition is met.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// logTail returns the last n lines of a log file, for failure messages.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procSet stops every process it holds when the test ends.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

func (s *procSet) add(p *proc) {
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
}

func (s *procSet) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		p.kill()
	}
}
