package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// natsContext is a context saved by the `nats` CLI (natscli v0.5.0, whose
// jsm.go natscontext package writes $XDG_CONFIG_HOME/nats/context/NAME.json,
// by default ~/.config/nats/context/NAME.json). Only the settings the
// worker can honour are read; a context that needs another one is refused
// by name rather than used half.
type natsContext struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`

	// Settings the worker cannot honour.
	NSC         string `json:"nsc"`
	UserJWT     string `json:"user_jwt"`
	UserSeed    string `json:"user_seed"`
	SocksProxy  string `json:"socks_proxy"`
	JSDomain    string `json:"jetstream_domain"`
	JSAPIPrefix string `json:"jetstream_api_prefix"`
	TLSFirst    bool   `json:"tls_first"`
	WinCertType string `json:"windows_cert_store"`
}

// natsAuthFlags are the flags that say how to authenticate; when any is
// set (flag, RECOVER_* or NATS_* variable, config file), a context's
// credentials are not used at all, so the two never mix.
var natsAuthFlags = []string{"nats-user", "nats-password", "nats-password-file", "nats-token", "nats-token-file", "nats-creds", "nats-nkey"}

// contextDir is where the nats CLI keeps its contexts.
func contextDir(lookupEnv func(string) (string, bool)) (string, error) {
	if x, ok := lookupEnv("XDG_CONFIG_HOME"); ok && x != "" {
		return filepath.Join(x, "nats", "context"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "nats", "context"), nil
}

// applyNATSContext fills the connection settings of n that no flag,
// variable or config file set from the context named by --context (or
// NATS_CONTEXT), if any. Errors name the context and the setting.
func applyNATSContext(fs *pflag.FlagSet, n *queue.Config, lookupEnv func(string) (string, bool)) error {
	f := fs.Lookup("context")
	if f == nil || f.Value.String() == "" {
		return nil
	}
	name := f.Value.String()
	if strings.Contains(name, "..") || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("context: %q is not a context name (no '/', '\\' or '..')", name)
	}
	dir, err := contextDir(lookupEnv)
	if err != nil {
		return fmt.Errorf("context %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".json")
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the context (--context)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("context: no context %q (%s does not exist; 'nats context ls' lists them)", name, path)
	}
	if err != nil {
		return fmt.Errorf("context %s: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("context %s: %s: %w", name, path, err)
	}
	for setting, set := range map[string]bool{
		"nsc": c.NSC != "", "user_jwt": c.UserJWT != "", "user_seed": c.UserSeed != "", "socks_proxy": c.SocksProxy != "",
		"jetstream_domain": c.JSDomain != "", "jetstream_api_prefix": c.JSAPIPrefix != "", "tls_first": c.TLSFirst,
		"windows_cert_store": c.WinCertType != "",
	} {
		if set {
			return fmt.Errorf("context %s: the worker does not support the setting %s; use the --nats-* flags instead", name, setting)
		}
	}
	expand := func(p string) string { return expandPath(p, lookupEnv) }
	fill := func(flag string, dst *string, v string) {
		if v != "" && !fs.Changed(flag) {
			*dst = v
		}
	}
	fill("nats-url", &n.URL, c.URL)
	fill("nats-tls-ca", &n.TLSCA, expand(c.CA))
	fill("nats-tls-cert", &n.TLSCert, expand(c.Cert))
	fill("nats-tls-key", &n.TLSKey, expand(c.Key))
	fill("nats-inbox-prefix", &n.InboxPrefix, c.InboxPrefix)
	for _, a := range natsAuthFlags {
		if fs.Changed(a) {
			return nil // the operator said how to authenticate
		}
	}
	switch {
	case c.User != "":
		n.User = c.User
		return contextSecret(name, "password", c.Password, &n.Password, &n.PasswordFile, lookupEnv)
	case c.Creds != "":
		if strings.HasPrefix(c.Creds, "nsc://") {
			return fmt.Errorf("context %s: creds %q: nsc:// is not supported; name the .creds file", name, c.Creds)
		}
		n.CredsFile = expand(strings.TrimPrefix(c.Creds, "file://"))
	case c.NKey != "":
		n.NKeySeedFile = expand(strings.TrimPrefix(c.NKey, "file://"))
	case c.Token != "":
		return contextSecret(name, "token", c.Token, &n.Token, &n.TokenFile, lookupEnv)
	}
	return nil
}

// contextSecret reads a context's password or token: a literal, env://NAME
// or file://PATH (natscontext's resolvers); a file is kept as a file, read
// at each connect.
func contextSecret(ctxName, setting, ref string, literal, file *string, lookupEnv func(string) (string, bool)) error {
	switch {
	case strings.HasPrefix(ref, "env://"):
		v, ok := lookupEnv(strings.TrimPrefix(ref, "env://"))
		if !ok || v == "" {
			return fmt.Errorf("context %s: %s: %s is not set", ctxName, setting, strings.TrimPrefix(ref, "env://"))
		}
		*literal = v
	case strings.HasPrefix(ref, "file://"):
		*file = expandPath(strings.TrimPrefix(ref, "file://"), lookupEnv)
	case strings.HasPrefix(ref, "op://"), strings.HasPrefix(ref, "nsc://"), strings.HasPrefix(ref, "data:"):
		scheme, _, _ := strings.Cut(ref, ":")
		return fmt.Errorf("context %s: %s: the %s: resolver is not supported; use a literal, env:// or file://", ctxName, setting, scheme)
	default:
		*literal = ref
	}
	return nil
}

// expandPath expands $VAR and a leading ~ as the nats CLI does.
func expandPath(p string, lookupEnv func(string) (string, bool)) string {
	p = os.Expand(p, func(k string) string {
		v, _ := lookupEnv(k)
		return v
	})
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = home + p[1:]
		}
	}
	return p
}
