//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// natsNode is one nats-server process with JetStream on file storage that
// fsyncs every write (sync_interval: always), as the README recommends for
// no loss. Its store survives kill and restart.
type natsNode struct {
	t        testing.TB
	name     string
	port     int // client port
	httpPort int // monitoring: /healthz
	conf     string
	log      string
	p        *proc
	procs    *procSet
}

// natsUser is the user every client (worker and test) authenticates as; its
// password is a canary that must never appear in the worker's output.
const natsUser = "recover"

// newNATSNodes writes the configs of n nodes (a cluster when n > 1) into
// dir, without starting them.
func newNATSNodes(t testing.TB, dir string, n int, password string, procs *procSet) []*natsNode {
	t.Helper()
	ports := freePorts(t, 3*n)
	nodes := make([]*natsNode, n)
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3*i+2]))
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		store := filepath.Join(dir, name, "store")
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", name, ports[3*i], ports[3*i+1])
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", store)
		fmt.Fprintf(&b, "authorization {\n  users: [ { user: %q, password: %q } ]\n}\n", natsUser, password)
		if n > 1 {
			fmt.Fprintf(&b, "cluster {\n  name: e2e\n  listen: 127.0.0.1:%d\n  routes: [ %s ]\n}\n", ports[3*i+2], strings.Join(routes, ", "))
		}
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, name, "nats.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &natsNode{
			t: t, name: name, port: ports[3*i], httpPort: ports[3*i+1],
			conf: conf, log: filepath.Join(dir, name, "nats.log"), procs: procs,
		}
	}
	return nodes
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start starts the process (again, after a kill: same ports, same store).
func (n *natsNode) start() {
	n.t.Helper()
	p, err := startProc(n.name, n.log, natsBin(), []string{"-c", n.conf}, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	n.p = p
	n.procs.add(p)
}

// healthy reports whether /healthz says the node is up with JetStream
// current (on a cluster: caught up with the meta leader and its streams).
func (n *natsNode) healthy() bool {
	if n.p == nil || n.p.exited() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.httpPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitUp fails the test if the node does not accept clients (JetStream
// healthy or not) within timeout. A cluster node opens its client port
// after its monitoring port.
func (n *natsNode) waitUp(timeout time.Duration) {
	n.t.Helper()
	up := func() bool {
		var d net.Dialer
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}
	if !waitFor(timeout, up) {
		n.t.Fatalf("nats-server %s not accepting clients within %s; log:\n%s", n.name, timeout, logTail(n.log, 30))
	}
}

// waitHealthy fails the test if the node is not healthy within timeout.
func (n *natsNode) waitHealthy(timeout time.Duration) {
	n.t.Helper()
	if !waitFor(timeout, n.healthy) {
		n.t.Fatalf("nats-server %s not healthy within %s; log:\n%s", n.name, timeout, logTail(n.log, 30))
	}
}

// kill SIGKILLs the node: no shutdown, no flush beyond what was fsynced.
func (n *natsNode) kill() {
	n.t.Logf("SIGKILL nats-server %s (pid %d)", n.name, n.p.pid())
	n.p.kill()
}

func urls(nodes []*natsNode) string {
	var u []string
	for _, n := range nodes {
		u = append(u, n.url())
	}
	return strings.Join(u, ",")
}
