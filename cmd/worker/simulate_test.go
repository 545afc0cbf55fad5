package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts"
	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

const (
	simulateAK    = "HPUASIMULATEACCESS01"
	simulateSK    = "simulateSecretKey0123456789abcdefghij"
	simulateJobID = "cb5fa20de5fd4cf8be681d4bd6fdd2f6"
)

// A bad fault flag stops `worker simulate` at start with one line naming it.
func TestSimulateRejectsBadValues(t *testing.T) {
	tests := []struct {
		name     string
		giveArgs []string
		giveEnv  map[string]string
		wantErr  string
	}{
		{name: "route-404 not a window", giveArgs: []string{"--route-404", "soon"}, wantErr: "route-404"},
		{name: "route-404 without duration", giveArgs: []string{"--route-404", "10s"}, wantErr: "route-404"},
		{name: "route-404 negative start", giveArgs: []string{"--route-404", "-1s,4s"}, wantErr: "route-404"},
		{name: "route-404 empty duration", giveArgs: []string{"--route-404", "10s,0s"}, wantErr: "route-404"},
		{name: "route-404 second of two", giveArgs: []string{"--route-404", "10s,4s", "--route-404", "1m,x"}, wantErr: "route-404"},
		{name: "route-404 from the environment", giveEnv: map[string]string{"RECOVER_ROUTE_404": "later"}, wantErr: "route-404 (from RECOVER_ROUTE_404)"},
		{name: "unauthorized", giveArgs: []string{"--unauthorized", "4s,10"}, wantErr: "unauthorized"},
		{name: "fail-status-rate above 1", giveArgs: []string{"--fail-status-rate", "2"}, wantErr: "fail-status-rate"},
		{name: "error-on-200-rate negative", giveArgs: []string{"--error-on-200-rate", "-0.1"}, wantErr: "error-on-200-rate"},
		{name: "html-error-rate not a number", giveArgs: []string{"--html-error-rate", "often"}, wantErr: "html-error-rate"},
		{name: "html-success-rate NaN", giveArgs: []string{"--html-success-rate", "NaN"}, wantErr: "html-success-rate"},
		{name: "string-body-rate above 1", giveArgs: []string{"--string-body-rate", "1.5"}, wantErr: "string-body-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Without credentials a value that slipped through stops at the
			// credentials check instead of serving.
			for _, k := range []string{"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "CLOUD_SDK_AK", "CLOUD_SDK_SK"} {
				t.Setenv(k, "")
			}
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			r := cli(t, "", append([]string{"simulate", "--addr", "127.0.0.1:0"}, tt.giveArgs...)...)
			require.NotZero(t, r.code)
			require.Contains(t, r.err, tt.wantErr)
			require.NotContains(t, r.err, "credentials")
			require.Equal(t, 1, strings.Count(strings.TrimSpace(r.err), "\n")+1, "one line: %q", r.err)
		})
	}
}

// `worker simulate` gives the answers its flags ask for, and its /stats
// says which faults it gave and that nothing was recovered.
func TestSimulateServesFaults(t *testing.T) {
	tests := []struct {
		name       string
		giveArgs   []string
		wantStatus int
		wantCode   string
		wantFault  codeartssim.Fault
	}{
		{name: "route 404 window from the start", giveArgs: []string{"--route-404", "0s,1h"},
			wantStatus: http.StatusNotFound, wantCode: codeartssim.CodeNoSuchAPI, wantFault: codeartssim.FaultRoute404},
		{name: "unauthorized window from the start", giveArgs: []string{"--unauthorized", "0s,1h"},
			wantStatus: http.StatusUnauthorized, wantCode: codeartssim.CodeAuthFailed, wantFault: codeartssim.FaultUnauthorized},
		{name: "200 fail", giveArgs: []string{"--fail-status-rate", "1"},
			wantStatus: http.StatusOK, wantFault: codeartssim.FaultFail200},
		{name: "HTML 502", giveArgs: []string{"--html-error-rate", "1"},
			wantStatus: http.StatusBadGateway, wantFault: codeartssim.FaultHTML502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noToolLeaks(t)
			t.Setenv("HUAWEICLOUD_SDK_AK", simulateAK)
			t.Setenv("HUAWEICLOUD_SDK_SK", simulateSK)
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan cliResult, 1)
			go func() { done <- cliContext(ctx, "", append([]string{"simulate", "--addr", addr}, tt.giveArgs...)...) }()
			stopped := false
			stop := func() cliResult {
				cancel()
				stopped = true
				return <-done
			}
			t.Cleanup(func() {
				if !stopped {
					stop()
				}
			})
			stats := func() (codeartssim.Stats, bool) {
				resp, err := http.Get("http://" + addr + "/stats?jobs=0")
				if err != nil {
					return codeartssim.Stats{}, false
				}
				defer func() { _ = resp.Body.Close() }()
				var st codeartssim.Stats
				return st, json.NewDecoder(resp.Body).Decode(&st) == nil
			}
			require.Eventually(t, func() bool { _, ok := stats(); return ok }, 10*time.Second, 10*time.Millisecond, "simulator up")

			client, err := codearts.NewClient(codearts.Config{
				Endpoint: "http://" + addr, ProjectID: "0123456789abcdef0123456789abcdef",
				Credentials: codearts.Credentials{AK: simulateAK, SK: simulateSK}, Timeout: 5 * time.Second,
			})
			require.NoError(t, err)
			defer func() { require.NoError(t, client.Close()) }()
			_, err = client.Recover(context.Background(), simulateJobID, "")
			var ae *codearts.APIError
			require.True(t, errors.As(err, &ae), "not a success: %v", err)
			require.Equal(t, tt.wantStatus, ae.StatusCode)
			if tt.wantCode != "" {
				require.Equal(t, tt.wantCode, ae.ErrorCode)
			}

			st, ok := stats()
			require.True(t, ok)
			require.Equal(t, map[codeartssim.Fault]int64{tt.wantFault: 1}, st.Faults)
			require.Zero(t, st.Recovered)
			require.Zero(t, stop().code)
		})
	}
}
