//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Names the least-privilege scenario relies on besides the request stream,
// subject and consumer (system_test.go): the worker's defaults.
const (
	dlqSubj        = "codearts.build.recover.dlq"
	resultSubj     = "codearts.build.recover.result"
	advisoryStream = "CODEARTS_RECOVER_MAXDELIVER"
	advisoryCons   = "recover-worker-maxdeliver"
	rateBucket     = "CODEARTS_RECOVER_RATE"
	outcomeBucket  = "CODEARTS_RECOVER_OUTCOMES"
	adminUser      = "admin"
)

// workerPermissions is everything `worker run --no-create` needs, found by
// running it with less and reading the server's permission-violation log;
// e2e/README.md lists it for operators. The worker has no inbox-prefix
// setting, so it subscribes to the default _INBOX.> (replies to its own
// JetStream API calls, pull batches and publish acks).
func workerPermissions() (publish, subscribe []string) {
	publish = []string{
		// --no-create's start-up checks, Advisories and the lag metric.
		"$JS.API.STREAM.INFO." + requestStream,
		"$JS.API.STREAM.INFO." + dlqStream,
		"$JS.API.CONSUMER.INFO." + requestStream + "." + consumerName,
		"$JS.API.CONSUMER.INFO." + advisoryStream + "." + advisoryCons,
		// Fetch, then ack / nak / InProgress.
		"$JS.API.CONSUMER.MSG.NEXT." + requestStream + "." + consumerName,
		"$JS.ACK." + requestStream + "." + consumerName + ".>",
		// Fleet-wide pause on 401 or a run of 403s, and its resume.
		"$JS.API.CONSUMER.PAUSE." + requestStream + "." + consumerName,
		// Terminal records.
		dlqSubj,
		resultSubj,
		// A hand-back (shutdown, drain timeout) requeues the request with
		// the tries it spent, so that it costs no delivery.
		requestSubj,
		// MAX_DELIVERIES advisories: fetch and ack them, read the stranded
		// request by sequence, delete it once dead-lettered.
		"$JS.API.CONSUMER.MSG.NEXT." + advisoryStream + "." + advisoryCons,
		"$JS.ACK." + advisoryStream + "." + advisoryCons + ".>",
		"$JS.API.STREAM.MSG.GET." + requestStream,
		"$JS.API.STREAM.MSG.DELETE." + requestStream,
		// --rate-limit with the fleet scope: the KV bucket.
		"$JS.API.STREAM.INFO.KV_" + rateBucket,
		"$JS.API.DIRECT.GET.KV_" + rateBucket + ".>",
		"$KV." + rateBucket + ".>",
		// Each request's one terminal outcome, claimed before its records
		// are published and read by redeliveries and the sweep.
		"$JS.API.STREAM.INFO.KV_" + outcomeBucket,
		"$JS.API.DIRECT.GET.KV_" + outcomeBucket + ".>",
		"$KV." + outcomeBucket + ".>",
	}
	return publish, []string{"_INBOX.>"}
}

// Scenario 9a: NATS least privilege. An admin provisions the streams, the
// consumers, the rate bucket and the outcome bucket; the worker runs with --no-create as an
// NKey user that may do only what workerPermissions lists, and drains a
// mixed run that also takes it through every privileged path: a 401 (the
// fleet-wide consumer pause and resume), requests stranded at MaxDeliver
// (the advisory consumer, reading and deleting them from the request
// stream) and --rate-limit (the KV bucket). The server must log no
// permission violation for it. Then, as the same user, the destructive
// operations are denied.
func TestNATSLeastPrivilege(t *testing.T) {
	t.Parallel()
	r := newRand(t)
	const n = 1500
	seed, public := newNKeyUser(t)
	pub, sub := workerPermissions()

	s := newSystemConf(t, "9a_nats_least_privilege", func(s *system) string {
		// trace: the test reads which subjects the worker published on
		// (max_traced_msg_len keeps payloads out of the log).
		return fmt.Sprintf(`trace: true
max_traced_msg_len: 1
accounts {
  RECOVER {
    jetstream: enabled
    users: [
      { user: %q, password: %q }
      { nkey: %q, permissions: { publish: { allow: %s }, subscribe: { allow: %s } } }
    ]
  }
}
`, adminUser, s.secrets.natsPassword, public, confList(pub), confList(sub))
	}, "nats", []nats.Option{nats.UserInfo(adminUser, "")}, mixedSim(10*time.Millisecond))

	// The admin provisions everything with the worker's own definitions
	// (what `worker run` without --no-create would create). MaxDeliver 2
	// lets the test strand requests in two AckWaits.
	provision(t, queue.Config{
		URL: s.nodes[0].url(), User: adminUser, Password: s.secrets.natsPassword,
		AckWait: ackWait, MaxDeliver: 2,
	})

	seedFile := filepath.Join(s.dir, "worker.nk")
	if err := os.WriteFile(seedFile, []byte(seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Three requests reach MaxDeliver without a worker: the test fetches
	// them from the worker's consumer twice and never acks. The worker must
	// dead-letter them max_deliveries from the advisories.
	stranded := make([]*item, 3)
	for i := range stranded {
		stranded[i] = goodItem(r, jobID(r, "ok"), worker.ReasonMaxDeliveries)
	}
	s.enqueue(stranded)
	strand(t, s, len(stranded))

	items := mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02})
	// One good job answers 401 once: the pool pauses the consumer for the
	// whole fleet, probes, and resumes.
	for _, it := range items {
		if it.want == outcomeRecovered {
			s.sim.Script(it.jobID, 401)
			break
		}
	}
	w := s.startWorker("w1", []string{"RECOVER_NATS_NKEY=" + seedFile},
		"--nats-url", s.nodes[0].url(), "--no-create", "--max-deliver", "2",
		"--concurrency", "32", "--rate-limit", "5000")
	s.workers = append(s.workers, w)
	s.enqueue(items)
	// A rolling restart while a call hangs past the drain timeout: the
	// request is handed back, requeued on the request subject.
	hung := goodItem(r, jobID(r, "hang"), outcomeRecovered)
	s.sim.Configure(codeartssim.WithApplyThenHangPrefix("hang", time.Minute))
	s.enqueue([]*item{hung})
	if !waitFor(time.Minute, func() bool { return s.sim.Stats().Jobs[hung.jobID].Calls > 0 }) {
		t.Fatal("the hanging call was never made")
	}
	if err := w.p.stop(20 * time.Second); err != nil {
		t.Errorf("SIGTERM during a hanging call did not end the worker cleanly: %v", err)
	}
	s.sim.Configure(codeartssim.WithApplyThenHangPrefix("", 0))
	w.start()
	f := s.finish(finishOptions{drainTimeout: 2 * time.Minute})
	if got := f.deadLettered[worker.ReasonMaxDeliveries]; got != len(stranded) {
		t.Errorf("%d requests dead-lettered max_deliveries, want the %d stranded ones", got, len(stranded))
	}

	out, err := os.ReadFile(w.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"paused: `, `"resumed: `} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the worker never logged %s…: the 401 did not take it through the consumer pause", want)
		}
	}
	for _, bad := range []string{"consumer pause failed", "consumer resume failed", "Permissions Violation", "permissions violation", seed} {
		if strings.Contains(string(out), bad) {
			t.Errorf("the worker's output contains %q", clipLine(bad))
		}
	}
	if v := violations(s.nodes[0].log); len(v) > 0 {
		t.Errorf("the server logged %d permission violations while the worker ran (its permission list is too small):\n%s",
			len(v), strings.Join(v, "\n"))
	}
	// The list is no larger than needed: the worker published on every
	// subject it allows (the run took it through every privileged path).
	used := published(s.nodes[0].log, "RECOVER/nkey:"+public)
	for _, allowed := range pub {
		hits := 0
		for subj, k := range used {
			if subjectMatches(allowed, subj) {
				hits += k
			}
		}
		if hits == 0 {
			t.Errorf("the worker never published on %s: the scenario misses a path, or the permission is not needed", allowed)
		}
	}
	t.Logf("subjects the worker published on: %v", used)

	t.Run("denied", func(t *testing.T) { deniedAsWorker(t, s, seedFile) })
}

// deniedAsWorker connects as the worker's NKey user and tries what a
// compromised worker must not be able to do; each attempt must fail, leave
// the stream and consumer as they were, and show in the server's log as a
// permission violation.
func deniedAsWorker(t *testing.T, s *system, seedFile string) {
	// Something to purge: one request, enqueued by the admin.
	marker := &item{msgID: "marker", body: []byte(strings.Repeat("a", 32))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.js.PublishMsg(ctx, marker.msg(), jetstream.WithMsgID(marker.msgID)); err != nil {
		t.Fatal(err)
	}

	nkey, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.nodes[0].url(), nkey, nats.Name("e2e-as-worker"),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the violations are expected
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The user can look at its stream (INFO is allowed); the handle is
	// what the destructive calls go through.
	st, err := js.Stream(ctx, requestStream)
	if err != nil {
		t.Fatalf("the worker user cannot read its stream's info: %v", err)
	}

	tests := []struct {
		giveName    string
		giveSubject string // what the server names in the violation
		give        func(ctx context.Context) error
	}{
		{"purge the request stream", "$JS.API.STREAM.PURGE." + requestStream,
			func(ctx context.Context) error { return st.Purge(ctx) }},
		{"delete the consumer", "$JS.API.CONSUMER.DELETE." + requestStream + "." + consumerName,
			func(ctx context.Context) error { return js.DeleteConsumer(ctx, requestStream, consumerName) }},
		{"delete the request stream", "$JS.API.STREAM.DELETE." + requestStream,
			func(ctx context.Context) error { return js.DeleteStream(ctx, requestStream) }},
		{"delete the dead letters", "$JS.API.STREAM.PURGE." + dlqStream,
			func(ctx context.Context) error {
				dlq, err := js.Stream(ctx, dlqStream)
				if err != nil {
					return err
				}
				return dlq.Purge(ctx)
			}},
		{"change the consumer", "$JS.API.CONSUMER.CREATE." + requestStream + "." + consumerName,
			func(ctx context.Context) error {
				cfg := queue.Config{AckWait: time.Hour}.ConsumerConfig()
				_, err := js.UpdateConsumer(ctx, requestStream, cfg)
				return err
			}},
	}
	// nats.go does not fail a request the server refused to route: each
	// denied call ends at its deadline, and the server's log says why.
	t.Run("as_worker", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(strings.ReplaceAll(tt.giveName, " ", "_"), func(t *testing.T) {
				t.Parallel()
				deny(t, s, tt.giveName, tt.giveSubject, tt.give)
			})
		}
	})

	// Nothing changed: the marker is still there, the consumer still has
	// its AckWait, the dead letters are all there.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got := s.msgs(requestStream); got != 1 {
		t.Errorf("the request stream holds %d messages, want the 1 the worker user could not purge", got)
	}
	c, err := s.js.Consumer(ctx, requestStream, consumerName)
	if err != nil {
		t.Errorf("the consumer is gone: %v", err)
	} else if c.CachedInfo().Config.AckWait != ackWait {
		t.Errorf("the consumer's AckWait is %s, want %s", c.CachedInfo().Config.AckWait, ackWait)
	}
	if s.msgs(dlqStream) <= 0 {
		t.Errorf("the dead letters are gone")
	}
}

// deny runs one forbidden call: it must fail, and the server's log must
// show a permission violation on subject (a prefix) by the e2e-as-worker
// connection.
func deny(t *testing.T, s *system, name, subject string, give func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := give(ctx)
	if err == nil {
		t.Fatalf("%s: allowed", name)
	}
	t.Logf("%s: %v", name, err)
	if !waitFor(5*time.Second, func() bool {
		for _, v := range violations(s.nodes[0].log) {
			if strings.Contains(v, `"`+subject) && strings.Contains(v, "e2e-as-worker") {
				t.Logf("server: %s", clipLine(v))
				return true
			}
		}
		return false
	}) {
		t.Errorf("%s: no permission violation for %s in the server log", name, subject)
	}
}

// published counts the subjects one connection (named by the server's
// "ACCOUNT/user" tag in its trace) published on, acks folded into
// $JS.ACK.<stream>.<consumer>.>.
func published(log, who string) map[string]int {
	data, _ := os.ReadFile(log)
	out := map[string]int{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.Contains(line, `"`+who+`"`) {
			continue
		}
		_, rest, ok := strings.Cut(line, "<<- [PUB ")
		if !ok {
			if _, rest, ok = strings.Cut(line, "<<- [HPUB "); !ok {
				continue
			}
		}
		subj, _, _ := strings.Cut(rest, " ")
		if a, ok := strings.CutPrefix(subj, "$JS.ACK."); ok {
			if p := strings.SplitN(a, ".", 3); len(p) == 3 {
				subj = "$JS.ACK." + p[0] + "." + p[1] + ".>"
			}
		}
		out[subj]++
	}
	return out
}

// subjectMatches reports whether the NATS subject pattern (with * and >
// wildcards) matches subject; a literal ">" token in subject matches only
// ">" or a pattern's ">".
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// provision creates the streams, the consumers and the rate bucket as
// `worker run` (without --no-create) would, through the worker's own queue
// package, as the admin.
func provision(t *testing.T, cfg queue.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(5 * time.Second) }()
	if err := conn.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Advisories(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.RateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Outcomes(ctx); err != nil {
		t.Fatal(err)
	}
}

// strand takes k requests from the worker's consumer MaxDeliver (2) times
// without acking them: AckWait after the second delivery the server gives
// up on them and announces a MAX_DELIVERIES advisory for each.
func strand(t *testing.T, s *system, k int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := s.js.Consumer(ctx, requestStream, consumerName)
	if err != nil {
		t.Fatal(err)
	}
	for delivery := 1; delivery <= 2; delivery++ {
		got := 0
		for got < k && ctx.Err() == nil {
			b, err := c.Fetch(k-got, jetstream.FetchMaxWait(ackWait+2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range b.Messages() {
				md, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				if int(md.NumDelivered) != delivery {
					t.Fatalf("stream_seq %d: delivery %d, want %d", md.Sequence.Stream, md.NumDelivered, delivery)
				}
				got++
			}
		}
		if got < k {
			t.Fatalf("delivery %d: fetched %d of %d requests", delivery, got, k)
		}
	}
	t.Logf("%d requests delivered twice and never acked: stranded at MaxDeliver within %s", k, ackWait)
}

// violations returns the permission-violation lines of a nats-server log.
func violations(log string) []string {
	data, _ := os.ReadFile(log)
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.Contains(line, "Violation") {
			out = append(out, line)
		}
	}
	return out
}

// confList formats subjects as a nats-server config list.
func confList(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// newSystemConf is newSystem for one nats-server whose config ends with
// extra (accounts, users, TLS) and whose test client, the admin, connects
// to scheme://127.0.0.1:port with opts. A nats.UserInfo option with an
// empty password gets the admin password (the NATS password canary).
func newSystemConf(t *testing.T, name string, extra func(*system) string, scheme string, opts []nats.Option, sim []codeartssim.Option) *system {
	t.Helper()
	for _, bin := range []string{workerBin(), natsBin()} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run `make e2e` (it builds bin/worker and installs the pinned bin/nats-server)", bin)
		}
	}
	s := &system{
		t: t, name: name, dir: t.TempDir(), secrets: newCanaries(), procs: &procSet{},
		items: map[uint64]*item{},
	}
	t.Cleanup(s.procs.killAll)
	ports := freePorts(t, 2)
	node := &natsNode{
		t: t, name: "n1", port: ports[0], httpPort: ports[1], procs: s.procs,
		conf: filepath.Join(s.dir, "nats.conf"), log: filepath.Join(s.dir, "nats.log"),
	}
	conf := fmt.Sprintf("server_name: n1\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", node.port, node.httpPort) +
		fmt.Sprintf("jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", filepath.Join(s.dir, "store")) +
		extra(s)
	if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	node.start()
	node.waitHealthy(30 * time.Second)
	s.nodes = []*natsNode{node}
	s.sim = startSim(t, s.secrets, sim...)

	opts = append([]nats.Option{nats.Name("e2e-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)
	opts = append(opts, func(o *nats.Options) error {
		if o.User != "" && o.Password == "" {
			o.Password = s.secrets.natsPassword
		}
		return nil
	})
	nc, err := nats.Connect(fmt.Sprintf("%s://127.0.0.1:%d", scheme, node.port), opts...)
	if err != nil {
		t.Fatalf("connect: %v; nats-server log:\n%s", err, logTail(node.log, 20))
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	if s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512)); err != nil {
		t.Fatal(err)
	}
	return s
}

// startWorker starts `worker run` like workerVia, except that its NATS
// connection is what env and flags say (--nats-url included) and that it
// is not one of s.workers until the caller adds it.
func (s *system) startWorker(name string, env []string, flags ...string) *workerProc {
	s.t.Helper()
	w := &workerProc{
		s: s, name: name, log: filepath.Join(s.dir, name+".log"),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePorts(s.t, 1)[0]),
	}
	w.args = append([]string{
		"run",
		"--endpoint", s.sim.url,
		"--ack-wait", ackWait.String(),
		"--http-addr", w.httpAddr,
		"--ui-addr", "", // the default address is one per machine
		"--drain-timeout", "5s",
		"--backoff-initial", "100ms",
		"--backoff-max", "1s",
		"--log-format", "json",
		"--log-level", "info",
	}, flags...)
	home := filepath.Join(s.dir, "home-"+name)
	_ = os.MkdirAll(home, 0o700)
	w.env = append([]string{
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
		"POD_NAME=" + name,
		"HUAWEICLOUD_SDK_AK=" + s.secrets.ak,
		"HUAWEICLOUD_SDK_SK=" + s.secrets.sk,
		"HUAWEICLOUD_SDK_PROJECT_ID=" + s.secrets.projectID,
	}, env...)
	w.start()
	return w
}

// newNKeyUser returns a fresh NKey user: the seed (what the worker's
// --nats-nkey file holds) and the public key (what the server config
// names). It encodes the keys itself, as the nkeys package does (base32 of
// prefix + key + CRC-16/XMODEM), so that package stays an indirect
// dependency; the server accepting the key proves the encoding.
func newNKeyUser(t *testing.T) (seed, public string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const (
		prefixSeed = 18 << 3 // "S"
		prefixUser = 20 << 3 // "U"
	)
	encode := func(b []byte) string {
		b = binary.LittleEndian.AppendUint16(b, crc16(b))
		return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	}
	seed = encode(append([]byte{prefixSeed | prefixUser>>5, (prefixUser & 31) << 3}, priv.Seed()...))
	public = encode(append([]byte{prefixUser}, pub...))
	return seed, public
}

func crc16(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
