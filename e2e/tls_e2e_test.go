//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// Scenario 9b: TLS with client certificates. The server presents a
// certificate from a test CA and requires one from the same CA (verify:
// true); the worker connects with --nats-tls-ca/--nats-tls-cert/--nats-tls-key
// and drains a small run. A second worker that trusts a different CA must
// refuse the server: it never connects, never becomes ready, processes
// nothing, and says why in its log.
func TestNATSTLS(t *testing.T) {
	t.Parallel()
	r := newRand(t)
	const n = 300
	pki := t.TempDir()
	good := newTestCA(t, pki, "good")
	good.issue(t, "server", true)
	good.issue(t, "client", false)
	other := newTestCA(t, pki, "other") // signs nothing the server presents

	s := newSystemConf(t, "9b_nats_tls", func(*system) string {
		return fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n  timeout: 2\n}\n",
			good.cert("server"), good.key("server"), good.caFile)
	}, "tls", []nats.Option{nats.RootCAs(good.caFile), nats.ClientCert(good.cert("client"), good.key("client"))},
		mixedSim(10*time.Millisecond))
	url := fmt.Sprintf("tls://127.0.0.1:%d", s.nodes[0].port)

	// The refused worker first, so it is trying while the run drains.
	bad := s.startWorker("wbadca", nil, "--nats-url", url, "--nats-tls-ca", other.caFile,
		"--nats-tls-cert", good.cert("client"), "--nats-tls-key", good.key("client"))

	w := s.startWorker("w1", nil, "--nats-url", url, "--nats-tls-ca", good.caFile,
		"--nats-tls-cert", good.cert("client"), "--nats-tls-key", good.key("client"), "--concurrency", "32")
	s.workers = append(s.workers, w)
	s.waitStreams(w)
	s.enqueue(mixedItems(r, n, mix{clientError: 0.04, invalid: 0.02}))

	// The refused worker: the server sees its handshakes fail (the client
	// aborts with "bad certificate" as it cannot verify the server).
	var handshakes []string
	if !waitFor(20*time.Second, func() bool {
		handshakes = handshakes[:0]
		for line := range strings.SplitSeq(readFile(s.nodes[0].log), "\n") {
			if strings.Contains(line, "TLS handshake error") && strings.Contains(line, "bad certificate") {
				handshakes = append(handshakes, line)
			}
		}
		return len(handshakes) >= 2 // it refused, and tried again
	}) {
		t.Errorf("the server saw no repeated TLS handshakes refused by the worker with the wrong CA; server log:\n%s", logTail(s.nodes[0].log, 20))
	} else {
		t.Logf("wrong CA: the server logs %d refused handshakes, e.g. %s", len(handshakes), handshakes[0])
	}
	ready, body := probe(bad.httpAddr, "/readyz")
	if ready == http.StatusOK {
		t.Errorf("the worker with the wrong CA is ready")
	}
	t.Logf("wrong CA: /readyz %d %s", ready, strings.TrimSpace(body))
	if code, _ := probe(bad.httpAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("the worker with the wrong CA is not alive: /healthz %d", code)
	}

	f := s.finish(finishOptions{drainTimeout: time.Minute})
	if f.recovered == 0 {
		t.Errorf("nothing recovered over TLS")
	}

	// It processed nothing: no result event names it.
	results, err := s.readStream(resultStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range results {
		var res worker.Result
		if err := json.Unmarshal(raw, &res); err == nil && res.Worker == bad.name {
			t.Fatalf("the worker with the wrong CA finished stream_seq %d", res.StreamSeq)
		}
	}
	// The worker says why it cannot connect, on every attempt.
	if out := readFile(bad.log); !strings.Contains(out, "certificate signed by unknown authority") {
		t.Errorf("the worker with the wrong CA does not log why it cannot connect:\n%s", out)
	}
	if bad.p.exited() {
		t.Errorf("the worker with the wrong CA exited by itself (%v); it should keep trying", bad.p.err)
	}
	// SIGTERM ends it while it is still connecting.
	err = bad.p.stop(10 * time.Second)
	t.Logf("wrong CA: after SIGTERM the worker exited with %v; last lines:\n%s", err, logTail(bad.log, 3))
	if !bad.p.exited() {
		t.Errorf("the worker with the wrong CA did not end on SIGTERM")
	}
}

// probe GETs an ops endpoint and returns its status (0 if unreachable) and body.
func probe(addr, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	buf := make([]byte, 4096)
	k, _ := resp.Body.Read(buf)
	b.Write(buf[:k])
	return resp.StatusCode, b.String()
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// testCA is a throwaway certificate authority (ECDSA P-256) whose files
// live in dir: <name>-ca.pem, and <name>-<leaf>.pem / -key.pem per leaf.
type testCA struct {
	dir, name, caFile string
	cert0             *x509.Certificate
	key0              *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "e2e " + name + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: dir, name: name, caFile: filepath.Join(dir, name+"-ca.pem"), cert0: cert, key0: key}
	writePEM(t, ca.caFile, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf certificate: for a server (127.0.0.1 and localhost)
// or a client.
func (ca *testCA) issue(t *testing.T, leaf string, server bool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "e2e " + leaf},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert0, &key.PublicKey, ca.key0)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, ca.cert(leaf), "CERTIFICATE", der)
	writePEM(t, ca.key(leaf), "PRIVATE KEY", keyDER)
}

func (ca *testCA) cert(leaf string) string {
	return filepath.Join(ca.dir, ca.name+"-"+leaf+".pem")
}

func (ca *testCA) key(leaf string) string {
	return filepath.Join(ca.dir, ca.name+"-"+leaf+"-key.pem")
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
