package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

func TestPlaintextNATS(t *testing.T) {
	tests := []struct {
		name    string
		give    queue.Config
		wantErr string
	}{
		{"no credentials", queue.Config{URL: "nats://nats:4222"}, ""},
		{"password off the machine", queue.Config{URL: "nats://nats:4222", User: "u", Password: "p"}, "a user and password"},
		{"token file", queue.Config{URL: "nats://nats:4222", TokenFile: "/t"}, "a token"},
		{"creds", queue.Config{URL: "nats://10.0.0.1:4222", CredsFile: "/c"}, "a user JWT"},
		{"nkey", queue.Config{URL: "nats:4222", NKeySeedFile: "/n"}, "an NKey signature"},
		{"credentials in the URL", queue.Config{URL: "nats://u:secret@nats:4222"}, "credentials in the URL"},
		{"one plaintext URL of two", queue.Config{URL: "tls://a:4222,nats://b:4222", User: "u"}, "nats://b:4222"},
		{"tls://", queue.Config{URL: "tls://nats:4222", User: "u", Password: "p"}, ""},
		{"a CA makes it TLS", queue.Config{URL: "nats://nats:4222", User: "u", TLSCA: "/ca"}, ""},
		{"a client certificate makes it TLS", queue.Config{URL: "nats://nats:4222", Token: "t", TLSCert: "/c", TLSKey: "/k"}, ""},
		{"loopback", queue.Config{URL: "nats://127.0.0.1:4222,nats://localhost:4223,nats://[::1]:4224", User: "u", Password: "p"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := plaintextNATS(tt.give, false)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.ErrorContains(t, err, "nats-url:")
			require.ErrorContains(t, err, "--allow-insecure")
			require.NotContains(t, err.Error(), "secret")
			require.NoError(t, plaintextNATS(tt.give, true), "--allow-insecure accepts it")
		})
	}
}

func TestPlaintextEndpoint(t *testing.T) {
	require.NoError(t, plaintextEndpoint("", false))
	require.NoError(t, plaintextEndpoint("https://codearts.example", false))
	require.NoError(t, plaintextEndpoint("http://127.0.0.1:8090", false))
	require.NoError(t, plaintextEndpoint("http://localhost:8090", false))
	err := plaintextEndpoint("http://sim.internal:8090", false)
	require.ErrorContains(t, err, "endpoint: http://sim.internal:8090 is plain http")
	require.ErrorContains(t, err, "--allow-insecure")
	require.NoError(t, plaintextEndpoint("http://sim.internal:8090", true))
}

// The commands refuse before connecting, naming the flag; with
// --allow-insecure they go on (here: to a NATS that is not there).
func TestCommandsRefusePlaintextCredentials(t *testing.T) {
	clearNATSEnv(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	const off = "nats://recover:secret-pw@192.0.2.1:4222" // TEST-NET-1: never answers
	for _, args := range [][]string{
		{"status", "--nats-url", off, "--connect-timeout", "1s"},
		{"dlq", "list", "--nats-url", off, "--connect-timeout", "1s"},
		{"enqueue", "--nats-url", off, "--connect-timeout", "1s", "cb5fa20de5fd4cf8be681d4bd6fdd2f6"},
		{"run", "--nats-url", off, "--http-addr", "", "--ui-addr", ""},
		{"run", "--endpoint", "http://api.example", "--http-addr", "", "--ui-addr", ""},
		{"discover", "--endpoint", "http://api.example", "--project-id", "0123456789abcdef0123456789abcdef"},
		{"discover", "--enqueue", "--nats-url", off, "--connect-timeout", "1s", "--project-id", "0123456789abcdef0123456789abcdef"},
	} {
		r := cli(t, "", args...)
		require.NotZero(t, r.code, "%v", args)
		require.Contains(t, r.err, "--allow-insecure", "%v", args)
		require.NotContains(t, r.err, "secret-pw", "%v", args)
	}
	r := cli(t, "", "status", "--nats-url", off, "--connect-timeout", "1s", "--allow-insecure")
	require.NotZero(t, r.code)
	require.Contains(t, r.err, "not reachable within 1s", "accepted, then the connection was tried")
	require.NotContains(t, r.err, "secret-pw")
}
