package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

func testFlags() (*pflag.FlagSet, *runOptions) {
	o := defaultRunOptions()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o.addFlags(fs)
	return fs, &o
}

func TestLayerConfig(t *testing.T) {
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(yamlFile, []byte("concurrency: 7\nstream: FROM_FILE\nregions: [cn-north-4, ap-southeast-3]\nlog-level: debug\n"), 0o600))
	tests := []struct {
		name      string
		giveArgs  []string
		giveEnv   map[string]string
		wantConc  int
		wantURL   string
		wantStrm  string
		wantRegns []string
		wantErr   string
	}{
		{name: "defaults", wantConc: 32, wantURL: "nats://127.0.0.1:4222", wantStrm: "CODEARTS_RECOVER"},
		{name: "env fills", giveEnv: map[string]string{"RECOVER_CONCURRENCY": "5", "NATS_URL": "nats://n:4222"},
			wantConc: 5, wantURL: "nats://n:4222", wantStrm: "CODEARTS_RECOVER"},
		{name: "RECOVER_NATS_URL wins over NATS_URL", giveEnv: map[string]string{"RECOVER_NATS_URL": "nats://a:1", "NATS_URL": "nats://b:2"},
			wantConc: 32, wantURL: "nats://a:1", wantStrm: "CODEARTS_RECOVER"},
		{name: "flag wins over env", giveArgs: []string{"--concurrency", "9"}, giveEnv: map[string]string{"RECOVER_CONCURRENCY": "5"},
			wantConc: 9, wantURL: "nats://127.0.0.1:4222", wantStrm: "CODEARTS_RECOVER"},
		{name: "file fills the rest", giveArgs: []string{"--config", yamlFile, "--stream", "FROM_FLAG"}, giveEnv: map[string]string{"RECOVER_CONCURRENCY": "5"},
			wantConc: 5, wantURL: "nats://127.0.0.1:4222", wantStrm: "FROM_FLAG", wantRegns: []string{"cn-north-4", "ap-southeast-3"}},
		{name: "env list", giveEnv: map[string]string{"RECOVER_REGIONS": "cn-north-4, cn-east-3"},
			wantConc: 32, wantURL: "nats://127.0.0.1:4222", wantStrm: "CODEARTS_RECOVER", wantRegns: []string{"cn-north-4", "cn-east-3"}},
		{name: "bad env value names the flag", giveEnv: map[string]string{"RECOVER_CONCURRENCY": "many"}, wantErr: "concurrency (from RECOVER_CONCURRENCY)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, o := testFlags()
			require.NoError(t, fs.Parse(tt.giveArgs))
			err := layerConfig(fs, func(k string) (string, bool) { v, ok := tt.giveEnv[k]; return v, ok })
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantConc, o.pool.Concurrency)
			require.Equal(t, tt.wantURL, o.nats.URL)
			require.Equal(t, tt.wantStrm, o.nats.Stream)
			require.Equal(t, tt.wantRegns, o.api.Regions)
		})
	}
}

func TestLayerConfigUnknownYAMLKey(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(f, []byte("concurency: 7\n"), 0o600))
	fs, _ := testFlags()
	require.NoError(t, fs.Parse([]string{"--config", f}))
	require.ErrorContains(t, layerConfig(fs, func(string) (string, bool) { return "", false }), `unknown key "concurency"`)
}

// A bad flag or value stops `worker run` at start with a message naming it.
func TestRunRejectsBadValues(t *testing.T) {
	tests := []struct {
		giveArgs []string
		wantErr  string
	}{
		{giveArgs: []string{"--concurrency", "0"}, wantErr: "concurrency"},
		{giveArgs: []string{"--ack-wait", "10ms"}, wantErr: "ack-wait"},
		{giveArgs: []string{"--log-format", "xml"}, wantErr: "log-format"},
		{giveArgs: []string{"--log-level", "loud"}, wantErr: "log-level"},
		{giveArgs: []string{"--rate-limit", "-1"}, wantErr: "rate-limit"},
		{giveArgs: []string{"--rate-limit-scope", "galaxy"}, wantErr: "rate-limit-scope"},
		{giveArgs: []string{"--dlq-subject", "codearts.build.recover"}, wantErr: "dlq-subject"},
		{giveArgs: []string{"--classify", "999:X=bogus"}, wantErr: "classify"},
		{giveArgs: []string{"--nats-creds", "/nonexistent/creds"}, wantErr: "nats-creds"},
		{giveArgs: []string{"--no-such-flag"}, wantErr: "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.giveArgs, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"run", "--http-addr", ""}, tt.giveArgs...), strings.NewReader(""), &stdout, &stderr)
			require.NotZero(t, code)
			require.Contains(t, stderr.String(), tt.wantErr)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %q", stderr.String())
		})
	}
}

// `worker demo` drains a mixed workload through the real SDK, embedded
// NATS and the simulator, and reports nothing lost.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole system")
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"demo", "--requests", "300", "--json", "--latency", "2ms", "--seed", "3"}, strings.NewReader(""), &stdout, &stderr)
	require.Zero(t, code, stderr.String())
	var sum demoSummary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum))
	// The campaign beside the 300: 200 jobs in the simulator, 100 disabled,
	// discovered, enqueued, drained, none still disabled after, reported.
	c := sum.Campaign
	require.NotNil(t, c)
	require.Equal(t, 200, c.Listed)
	require.Equal(t, 100, c.Disabled)
	require.Zero(t, c.StillDisabled, "every job of the campaign is enabled after the drain")
	require.EqualValues(t, 100, c.Report.Enqueued)
	require.EqualValues(t, 100, c.Report.Recovered)
	require.Zero(t, c.Report.InFlight)
	require.Equal(t, 300+100, sum.Requests)
	require.Zero(t, sum.Lost)
	dead := 0
	for _, n := range sum.DeadLettered {
		dead += n
	}
	require.Equal(t, 400, sum.Recovered+dead)
	require.Equal(t, 3, sum.DeadLettered["invalid_request"], "1% of 300 poison messages")
	require.Equal(t, 12, sum.DeadLettered["client_error"], "3% 404 + 1% 403 of 300")
	require.Zero(t, sum.FalselyRecovered, "every job reported recovered was recovered by the API")
	require.GreaterOrEqual(t, sum.APICalls["200"], int64(sum.Recovered), "a 200 saying fail is a 200 that recovers nothing")
}
