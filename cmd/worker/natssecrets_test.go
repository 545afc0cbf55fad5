package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// authNATS starts a JetStream server whose auth opts sets, and creates the
// worker's streams on it with cfg's credentials.
func authNATS(t *testing.T, auth func(*server.Options), cfg queue.Config) string {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	auth(opts)
	ns, err := server.NewServer(opts)
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	cfg.URL = ns.ClientURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := queue.Connect(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, conn.Ensure(ctx))
	require.NoError(t, conn.Close(time.Second))
	return ns.ClientURL()
}

// writeSecret writes a secret file (with the newline an editor leaves).
func writeSecret(t *testing.T, name, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
	return p
}

// writeContext saves a nats CLI context NAME under a fresh XDG_CONFIG_HOME.
func writeContext(t *testing.T, name, body string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "nats", "context"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nats", "context", name+".json"), []byte(body), 0o600))
}

// clearNATSEnv unsets the variables a developer's shell may hold.
func clearNATSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_CREDS", "NATS_NKEY", "NATS_CA", "NATS_CERT", "NATS_KEY", "NATS_CONTEXT",
		"RECOVER_NATS_PASSWORD", "RECOVER_NATS_PASSWORD_FILE", "RECOVER_NATS_TOKEN", "RECOVER_NATS_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
}

// Every form a NATS secret can take reaches the server: files, the
// worker's and the nats CLI's variables, and nats CLI contexts (literal,
// env:// and file:// secrets); a wrong secret in any of them is refused by
// the server. Each case runs `worker status`, which must connect.
func TestNATSSecretForms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS servers")
	}
	noToolLeaks(t)
	const (
		user, password = "ops", "pa55-from-a-file"
		token          = "t0ken-from-a-file"
	)
	userURL := authNATS(t, func(o *server.Options) { o.Username, o.Password = user, password }, queue.Config{User: user, Password: password})
	tokenURL := authNATS(t, func(o *server.Options) { o.Authorization = token }, queue.Config{Token: token})
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := writeSecret(t, "user.nk", string(seed))
	nkeyURL := authNATS(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, queue.Config{NKeySeedFile: seedFile})

	passwordFile, tokenFile := writeSecret(t, "password", password), writeSecret(t, "token", token)
	wrongFile := writeSecret(t, "wrong", "not-it")
	tests := []struct {
		name     string
		giveArgs []string
		giveEnv  map[string]string
		giveCtx  string // a context named "ops", when set
		wantOK   bool
	}{
		{name: "password file", giveArgs: []string{"--nats-url", userURL, "--nats-user", user, "--nats-password-file", passwordFile}, wantOK: true},
		{name: "password file, wrong", giveArgs: []string{"--nats-url", userURL, "--nats-user", user, "--nats-password-file", wrongFile}},
		{name: "password file from RECOVER_", giveArgs: []string{"--nats-url", userURL}, wantOK: true,
			giveEnv: map[string]string{"RECOVER_NATS_USER": user, "RECOVER_NATS_PASSWORD_FILE": passwordFile}},
		{name: "NATS_USER and NATS_PASSWORD", wantOK: true, giveEnv: map[string]string{"NATS_URL": userURL, "NATS_USER": user, "NATS_PASSWORD": password}},
		{name: "NATS_PASSWORD, wrong", giveEnv: map[string]string{"NATS_URL": userURL, "NATS_USER": user, "NATS_PASSWORD": "not-it"}},
		{name: "token file", giveArgs: []string{"--nats-url", tokenURL, "--nats-token-file", tokenFile}, wantOK: true},
		{name: "token file from RECOVER_", giveArgs: []string{"--nats-url", tokenURL}, giveEnv: map[string]string{"RECOVER_NATS_TOKEN_FILE": tokenFile}, wantOK: true},
		{name: "token file, wrong", giveArgs: []string{"--nats-url", tokenURL, "--nats-token-file", wrongFile}},
		{name: "NATS_NKEY", giveEnv: map[string]string{"NATS_URL": nkeyURL, "NATS_NKEY": seedFile}, wantOK: true},
		{name: "context, literal password", giveArgs: []string{"--context", "ops"}, wantOK: true,
			giveCtx: `{"url":"` + userURL + `","user":"` + user + `","password":"` + password + `"}`},
		{name: "context from NATS_CONTEXT, env:// password", giveEnv: map[string]string{"NATS_CONTEXT": "ops", "OPS_PW": password}, wantOK: true,
			giveCtx: `{"url":"` + userURL + `","user":"` + user + `","password":"env://OPS_PW"}`},
		{name: "context, file:// token", giveArgs: []string{"--context", "ops"}, wantOK: true,
			giveCtx: `{"url":"` + tokenURL + `","token":"file://` + tokenFile + `"}`},
		{name: "context, nkey", giveArgs: []string{"--context", "ops"}, wantOK: true, giveCtx: `{"url":"` + nkeyURL + `","nkey":"` + seedFile + `"}`},
		{name: "context, its credentials replaced by a flag's", giveArgs: []string{"--context", "ops", "--nats-user", user, "--nats-password-file", passwordFile}, wantOK: true,
			giveCtx: `{"url":"` + userURL + `","user":"someone-else","password":"not-it"}`},
		{name: "context, wrong password", giveArgs: []string{"--context", "ops"}, giveCtx: `{"url":"` + userURL + `","user":"` + user + `","password":"not-it"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearNATSEnv(t)
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			if tt.giveCtx != "" {
				writeContext(t, "ops", tt.giveCtx)
			}
			r := cli(t, "", append([]string{"status", "--json", "--connect-timeout", "3s"}, tt.giveArgs...)...)
			if tt.wantOK {
				require.Zero(t, r.code, r.err)
				require.Contains(t, r.out, `"stream"`)
			} else {
				require.NotZero(t, r.code, r.out)
				require.Contains(t, strings.ToLower(r.err), "authorization", r.err)
			}
			for _, secret := range []string{password, token, string(seed)} {
				require.NotContains(t, r.out+r.err, secret, "no secret printed")
			}
		})
	}
}

// Bad secret settings stop the command with an error naming the flag or
// the context's setting.
func TestNATSSecretErrors(t *testing.T) {
	clearNATSEnv(t)
	empty := writeSecret(t, "empty", "")
	tests := []struct {
		name     string
		giveArgs []string
		giveCtx  string
		wantErr  string
	}{
		{"password and its file", []string{"--nats-user", "u", "--nats-password", "p", "--nats-password-file", empty}, "", "nats-password and nats-password-file are exclusive"},
		{"password file without user", []string{"--nats-password-file", empty}, "", "nats-password-file: needs nats-user"},
		{"missing token file", []string{"--nats-token-file", "/nonexistent/token"}, "", "nats-token-file:"},
		{"empty token file", []string{"--nats-token-file", empty}, "", "nats-token-file: " + empty + " is empty"},
		{"no such context", []string{"--context", "nope"}, "", `context: no context "nope"`},
		{"a path as context", []string{"--context", "../ops"}, "", "is not a context name"},
		{"unsupported setting", []string{"--context", "ops"}, `{"url":"nats://127.0.0.1:1","jetstream_domain":"hub"}`, "does not support the setting jetstream_domain"},
		{"unsupported resolver", []string{"--context", "ops"}, `{"url":"nats://127.0.0.1:1","user":"u","password":"op://vault/nats"}`, "the op: resolver is not supported"},
		{"env:// not set", []string{"--context", "ops"}, `{"url":"nats://127.0.0.1:1","user":"u","password":"env://NOT_SET_ANYWHERE"}`, "NOT_SET_ANYWHERE is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.giveCtx != "" {
				writeContext(t, "ops", tt.giveCtx)
			} else {
				t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			}
			r := cli(t, "", append([]string{"status", "--nats-url", "nats://127.0.0.1:1", "--connect-timeout", "1s"}, tt.giveArgs...)...)
			require.NotZero(t, r.code)
			require.Contains(t, r.err, tt.wantErr)
		})
	}
}

// The nats CLI's variables reach the flags whose files they name, for the
// forms no server above checks (creds, TLS).
func TestNATSCLIVariables(t *testing.T) {
	env := map[string]string{"NATS_CREDS": "/c/user.creds", "NATS_CA": "/t/ca.pem", "NATS_CERT": "/t/cert.pem", "NATS_KEY": "/t/key.pem"}
	var o natsOptions
	fs := pflag.NewFlagSet("status", pflag.ContinueOnError)
	o.addFlags(fs)
	require.NoError(t, layerEnv(fs, natsEnvFlags, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	require.Equal(t, "/c/user.creds", o.cfg.CredsFile)
	require.Equal(t, "/t/ca.pem", o.cfg.TLSCA)
	require.Equal(t, "/t/cert.pem", o.cfg.TLSCert)
	require.Equal(t, "/t/key.pem", o.cfg.TLSKey)

	// A context's TLS files fill what no flag set; ~ and $VAR expand.
	writeContext(t, "tls", `{"url":"tls://nats:4222","creds":"~/u.creds","ca":"$CERTS/ca.pem","cert":"$CERTS/c.pem","key":"$CERTS/k.pem"}`)
	var c natsOptions
	fs = pflag.NewFlagSet("status", pflag.ContinueOnError)
	c.addFlags(fs)
	require.NoError(t, fs.Parse([]string{"--context", "tls", "--nats-tls-ca", "/mine/ca.pem"}))
	vars := map[string]string{"CERTS": "/etc/certs", "XDG_CONFIG_HOME": os.Getenv("XDG_CONFIG_HOME")}
	require.NoError(t, applyNATSContext(fs, &c.cfg, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }))
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	require.Equal(t, queue.Config{URL: "tls://nats:4222", CredsFile: home + "/u.creds", TLSCA: "/mine/ca.pem", TLSCert: "/etc/certs/c.pem", TLSKey: "/etc/certs/k.pem"},
		queue.Config{URL: c.cfg.URL, CredsFile: c.cfg.CredsFile, TLSCA: c.cfg.TLSCA, TLSCert: c.cfg.TLSCert, TLSKey: c.cfg.TLSKey})
}
