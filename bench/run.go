package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// queueConfig is the queue configuration of the orchestrator, which
// creates the streams and the consumer before it enqueues, and of the naive
// peer; `worker run` is given the same consumer settings as flags.
func queueConfig(url string, ackWait time.Duration) queue.Config {
	return queue.Config{
		URL: url, AckWait: ackWait, MaxDeliver: benchMaxDeliver, MaxAckPending: benchMaxAckPending,
		Name: "recover-bench",
	}
}

// runScenario runs one scenario with one peer, from a fresh nats-server and
// simulator to the oracle.
func runScenario(o options, sc scenario, p peer, run int) (result, error) {
	ideal := sc.ideal(o.concurrency)
	r := result{Scenario: sc.name, Peer: p.name, N: sc.n, Fleet: sc.fleet(), IdealS: ideal.Seconds(), Lost: -1, want: sc.want}
	if sc.quota > 0 {
		r.Notes = fmt.Sprintf("ideal N/(R·(1−e)): the %.0f%% 500s spend quota too", sc.errorRate*100)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "recover-bench-")
	if err != nil {
		return r, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logDir := dir
	if o.logDir != "" {
		logDir = o.logDir
		if err := os.MkdirAll(logDir, 0o750); err != nil {
			return r, err
		}
	}

	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		return r, err
	}
	defer ns.Shutdown()

	simLog, err := os.Create(filepath.Join(logDir, fmt.Sprintf("%s-%s-%d-sim.log", sc.name, p.name, run))) //nolint:gosec // a directory the user named, names we make
	if err != nil {
		return r, err
	}
	defer func() { _ = simLog.Close() }()
	simArgs := []string{roleSim, "-latency", sc.latency.String(), "-error-rate", fmt.Sprint(sc.errorRate),
		"-rate-limit", fmt.Sprint(sc.quota)}
	env := []string{"HUAWEICLOUD_SDK_AK=" + benchAK, "HUAWEICLOUD_SDK_SK=" + benchSK}
	certFile := ""
	if o.tls != "off" {
		cert, key, err := selfSigned(dir)
		if err != nil {
			return r, err
		}
		certFile = cert
		simArgs = append(simArgs, "-tls-cert", cert, "-tls-key", key)
		if o.tls == "h1" {
			simArgs = append(simArgs, "-h1")
		}
		// Go's crypto/x509 reads SSL_CERT_FILE on Linux: the worker
		// verifies the simulator's certificate as it would the real API's.
		env = append(env, "SSL_CERT_FILE="+cert)
	}
	hc, err := simClient(certFile)
	if err != nil {
		return r, err
	}
	sim, err := spawn("simulator", o.self, simArgs, nil, simLog)
	if err != nil {
		return r, err
	}
	defer func() {
		_ = sim.stdin.Close()
		sim.signal(os.Interrupt)
		_ = sim.wait(10 * time.Second)
	}()
	simURL, err := sim.expect("url ", 30*time.Second)
	if err != nil {
		return r, err
	}

	conn, err := queue.Connect(ctx, queueConfig(ns.URL(), o.ackWait))
	if err != nil {
		return r, err
	}
	defer func() { _ = conn.Close(5 * time.Second) }()
	if err := conn.Ensure(ctx); err != nil {
		return r, err
	}
	qcfg := conn.Config()
	ids, err := enqueue(ctx, conn, sc)
	if err != nil {
		return r, fmt.Errorf("enqueue: %w", err)
	}

	f := &fleet{p: p, s: setup{
		natsURL: ns.URL(), simURL: simURL, concurrency: o.concurrency, ackWait: o.ackWait, rateLimit: sc.rateLimit,
		logLevel: o.logLevel, extra: o.workerArgs, env: env, self: o.self, logDir: logDir, prefix: fmt.Sprintf("%s-%s-%d", sc.name, p.name, run),
	}}
	defer f.close()
	if err := f.start(sc.workers()); err != nil {
		return r, err
	}
	varz0, _ := ns.Server().Varz(nil)
	polls := 0
	t0 := time.Now()
	f.begin()
	plan := sc.plan(o.concurrency)
	outageAt := sc.outageStart(o.concurrency)
	// A zero-latency scenario's ideal is 0: allow a millisecond a request.
	timeout := 4*ideal + 60*time.Second + time.Duration(sc.n)*time.Millisecond
	outageSent := false
	var end time.Time
	var runErr error
	var cumulative []uint64 // results stored by the end of each second
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		el := time.Since(t0)
		if sc.outageFor > 0 && !outageSent && el >= outageAt {
			outageSent = true
			if runErr = startOutage(hc, simURL, sc.outageFor); runErr != nil {
				break
			}
		}
		for len(plan) > 0 && el >= plan[0].at {
			if runErr = f.apply(plan[0]); runErr != nil {
				break
			}
			plan = plan[1:]
		}
		if runErr != nil {
			break
		}
		if polls%10 == 0 {
			f.sample()
		}
		info, err := conn.StreamInfo(ctx, qcfg.ResultStream)
		polls++
		if err != nil {
			runErr = err
			break
		}
		sec := int(el / time.Second)
		if sec >= len(cumulative) {
			cumulative = append(cumulative, make([]uint64, sec+1-len(cumulative))...)
		}
		cumulative[sec] = info.State.Msgs
		if info.State.Msgs >= uint64(sc.n) { //nolint:gosec // n > 0
			end = info.State.LastTime
			break
		}
		if el > timeout {
			runErr = fmt.Errorf("not drained within %s (%d of %d results)", timeout, info.State.Msgs, sc.n)
			break
		}
	}
	if len(plan) > 0 && runErr == nil {
		r.Notes = strings.TrimPrefix(r.Notes+fmt.Sprintf("; drained before %d of the fleet's changes", len(plan)), "; ")
	}
	varz1, _ := ns.Server().Varz(nil)
	if err := f.stop(); err != nil && runErr == nil {
		runErr = err
	}
	cpu, rss := f.usage()
	r.Processes = f.count
	if varz0 != nil && varz1 != nil {
		// Messages the server received during the drain, less this
		// process's own polls: the workers' NATS traffic.
		r.NATSMsgsPerReq = float64(varz1.InMsgs-varz0.InMsgs-int64(polls)) / float64(sc.n)
	}
	if end.IsZero() {
		end = time.Now()
	}
	r.WallS = end.Sub(t0).Seconds()
	var prev uint64
	for _, c := range cumulative {
		c = max(c, prev) // a second without a poll
		r.Timeline = append(r.Timeline, c-prev)
		prev = c
	}
	if r.IdealS > 0 && r.WallS > 0 {
		r.Ratio = r.IdealS / r.WallS
	}
	r.Throughput = float64(sc.n) / r.WallS
	r.WorkerCPUus = float64(cpu) / float64(sc.n)
	r.PeakRSSMiB = float64(rss) / 1024
	r.LogBytes = f.logBytes()

	stats, err := simStats(hc, simURL)
	if err != nil {
		return r, errors.Join(runErr, err)
	}
	r.Calls = map[string]int64{}
	for code, n := range stats.ByStatus {
		r.Calls[strconv.Itoa(code)] = n
		r.CallsTotal += n
	}
	if r.CallsTotal > 0 {
		r.Share429 = float64(stats.ByStatus[http.StatusTooManyRequests]) / float64(r.CallsTotal)
	}
	for _, j := range stats.Jobs {
		if j.Recovered > 1 {
			r.RepeatedRecovers += j.Recovered - 1
		}
	}
	if err := oracle(ctx, conn, qcfg, ids, &r); err != nil {
		return r, errors.Join(runErr, err)
	}
	// The simulator's own CPU, for the record (it is a separate process).
	_ = sim.stdin.Close()
	sim.signal(os.Interrupt)
	if err := sim.wait(10 * time.Second); err == nil {
		r.SimCPUus = float64(sim.cpu()) / float64(sc.n)
	}
	return r, runErr
}

// Prefixes of the job ids that the simulator answers 403 and 404
// (codeartssim.StandardPrefixOutcomes); every other id starts with "b".
const (
	prefixForbidden = "403"
	prefixNotFound  = "404"
)

// enqueue publishes the scenario's N requests (with Nats-Msg-Id), a third
// each as a bare id, a JSON object and a CloudEvents event, and returns
// their job ids. Shares of 404 and 403 jobs are spread evenly, so that no
// run of consecutive 403s looks like a missing permission.
func enqueue(ctx context.Context, conn *queue.Conn, sc scenario) ([]string, error) {
	every := func(share float64) int {
		if share <= 0 {
			return 0
		}
		return max(1, int(math.Round(1/share)))
	}
	every404, every403 := every(sc.notFound), every(sc.forbidden)
	ids := make([]string, sc.n)
	subject := conn.Config().Subject
	const window = 2000
	futures := make([]jetstream.PubAckFuture, 0, window)
	flush := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for i := range sc.n {
		prefix := "b" // never 400/403/404/422: those prefixes script the simulator
		switch {
		case every403 > 0 && i%every403 == every403/3:
			prefix = prefixForbidden
		case every404 > 0 && i%every404 == every404/2:
			prefix = prefixNotFound
		}
		id := (prefix + randomHex(16))[:32]
		ids[i] = id
		var body string
		switch i % 3 {
		case 0:
			body = id
		case 1:
			body = fmt.Sprintf(`{"job_id":%q,"reason":"bench","requested_by":"recover-bench"}`, id)
		default:
			body = fmt.Sprintf(`{"specversion":"1.0","id":"bench-%d","source":"recover-bench","type":"codearts.build.recover","data":{"job_id":%q}}`, i, id)
		}
		f, err := conn.JS.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(body)}, jetstream.WithMsgID(id))
		if err != nil {
			return nil, err
		}
		if futures = append(futures, f); len(futures) == window {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	info, err := conn.StreamInfo(ctx, conn.Config().Stream)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs != uint64(sc.n) { //nolint:gosec // n > 0
		return nil, fmt.Errorf("request stream holds %d messages, want %d", info.State.Msgs, sc.n)
	}
	return ids, nil
}

// oracle reads the result and dead-letter streams back and compares the job
// ids they name with the enqueued ones. A dead letter is expected only for
// a job the simulator answers 403 or 404 (reason client_error).
func oracle(ctx context.Context, conn *queue.Conn, qcfg queue.Config, ids []string, r *result) error {
	recovered := map[string]bool{}
	dead := map[string]string{}
	err := conn.Scan(ctx, qcfg.ResultStream, func(m queue.StoredMsg) error {
		var res worker.Result
		if err := json.Unmarshal(m.Data, &res); err != nil {
			return fmt.Errorf("result at %d: %w", m.Seq, err)
		}
		if res.Outcome == worker.OutcomeRecovered {
			recovered[res.JobID] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = conn.Scan(ctx, qcfg.DLQStream, func(m queue.StoredMsg) error {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return fmt.Errorf("dead letter at %d: %w", m.Seq, err)
		}
		dead[d.JobID] = d.Reason
		return nil
	})
	if err != nil {
		return err
	}
	r.Lost = 0
	r.DeadLettered = map[string]int{}
	for _, id := range ids {
		reason, isDead := dead[id]
		if isDead {
			r.DeadLettered[reason]++
			scripted := strings.HasPrefix(id, prefixForbidden) || strings.HasPrefix(id, prefixNotFound)
			if !scripted || reason != worker.ReasonClientError {
				r.Unexpected++
			}
		}
		switch {
		case recovered[id] && isDead:
			r.Both++
		case !recovered[id] && !isDead:
			r.Lost++
		}
		if recovered[id] {
			r.Recovered++
		}
	}
	return nil
}

func startOutage(hc *http.Client, simURL string, d time.Duration) error {
	resp, err := hc.Post(simURL+"/bench/outage?for="+d.String(), "text/plain", nil) //nolint:noctx // loopback simulator we started; the client has a timeout
	if err != nil {
		return fmt.Errorf("start outage: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("start outage: %s", resp.Status)
	}
	return nil
}

func simStats(hc *http.Client, simURL string) (codeartssim.Stats, error) {
	var st codeartssim.Stats
	resp, err := hc.Get(simURL + "/stats") //nolint:noctx // loopback simulator we started; the client has a timeout
	if err != nil {
		return st, fmt.Errorf("simulator stats: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("simulator stats: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(body, &st)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
