//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"
)

// Scenario 3: nats-server (file storage, sync_interval: always) is
// SIGKILLed mid-run and restarted on the same store 2 seconds later. The
// worker must reconnect by itself: same process, nothing lost.
func TestNATSServerSIGKILL(t *testing.T) {
	r := newRand(t)
	const n = 3000
	s := newSystem(t, "3_nats_sigkill", sysOptions{sim: mixedSim(10 * time.Millisecond)})
	w := s.worker("w1", "--concurrency", "32")
	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))

	s.waitTerminals(n*3/10, 2*time.Minute)
	pid := w.p.pid()
	s.nodes[0].kill()
	time.Sleep(2 * time.Second) // the fault: NATS down for 2s
	s.nodes[0].start()
	s.nodes[0].waitHealthy(30 * time.Second)
	s.finish(finishOptions{drainTimeout: 2 * time.Minute})
	if w.starts != 1 || w.p.pid() != pid {
		t.Errorf("the worker was restarted (%d starts); it should have reconnected by itself", w.starts)
	}
}

// Scenario 4: a 3-node cluster with R3 streams and two workers. Mid-run the
// node holding the request stream's leader is SIGKILLed; work goes on
// without it; it is restarted. Then the node holding the consumer's leader
// is SIGKILLed and later restarted.
func TestClusterLeaderLoss(t *testing.T) {
	r := newRand(t)
	const n = 4000
	s := newSystem(t, "4_cluster_leader_loss", sysOptions{nodes: 3, sim: mixedSim(60 * time.Millisecond)})
	s.worker("w1", "--concurrency", "16", "--replicas", "3")
	s.worker("w2", "--concurrency", "16", "--replicas", "3")
	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))

	for _, what := range []string{"stream", "consumer"} {
		at := n / 5
		if what == "consumer" {
			at = n / 2
		}
		s.waitTerminals(at, 2*time.Minute)
		node := s.leader(what)
		t.Logf("the %s leader is on %s", what, node.name)
		done := s.terminals()
		node.kill()
		s.waitTerminals(done+n/10, 2*time.Minute) // work goes on without it
		node.start()
		node.waitHealthy(60 * time.Second)
	}
	s.finish(finishOptions{drainTimeout: 3 * time.Minute})
}

// leader returns the node that leads the request stream ("stream") or its
// consumer ("consumer").
func (s *system) leader(what string) *natsNode {
	s.t.Helper()
	var name string
	waitFor(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := s.js.Stream(ctx, requestStream)
		if err != nil {
			return false
		}
		if what == "stream" {
			if c := st.CachedInfo().Cluster; c != nil {
				name = c.Leader
			}
			return name != ""
		}
		c, err := st.Consumer(ctx, consumerName)
		if err != nil {
			return false
		}
		if ci := c.CachedInfo().Cluster; ci != nil {
			name = ci.Leader
		}
		return name != ""
	})
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	s.t.Fatalf("no %s leader found (got %q)", what, name)
	return nil
}

// Scenario 5: a TCP proxy of our own between the worker and NATS. Mid-run
// it blackholes the link for longer than the client's ping interval (5s),
// then restores it (the connection survives, with everything the worker
// sent meanwhile arriving late, after AckWait has handed its requests back);
// later it blackholes it long enough (25s > 3 pings outstanding at 5s) that
// the client declares the connection stale and reconnects; then it resets
// every connection three times.
func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	r := newRand(t)
	const n = 2000
	s := newSystem(t, "5_network_blackhole_reset", sysOptions{sim: mixedSim(40 * time.Millisecond)})
	px := newProxy(t, s.nodes[0].url()[len("nats://"):])
	s.workerVia("w1", "nats://"+px.addr(), "--concurrency", "16")
	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))

	for _, hole := range []time.Duration{8 * time.Second, 25 * time.Second} {
		s.waitTerminals(s.terminals()+n/8, 2*time.Minute)
		conns := px.connections()
		t.Logf("blackhole for %s", hole)
		px.blackhole()
		time.Sleep(hole) // the fault
		px.restore()
		if hole > 20*time.Second && !waitFor(10*time.Second, func() bool { return px.connections() > conns }) {
			t.Errorf("the worker did not reconnect after a %s blackhole", hole)
		}
		t.Logf("connections through the proxy: %d before the blackhole, %d after", conns, px.connections())
	}
	for range 3 {
		s.waitTerminals(s.terminals()+n/20, 2*time.Minute)
		conns := px.connections()
		t.Logf("reset %d connections", px.reset())
		if !waitFor(10*time.Second, func() bool { return px.connections() > conns }) {
			t.Errorf("the worker did not reconnect after a reset")
		}
	}
	s.finish(finishOptions{drainTimeout: 2 * time.Minute})
}
