package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// natsOptions are the connection flags of the operator commands (enqueue,
// dlq, status): the same names, defaults and environment variables as
// `worker run`, so an operator's RECOVER_*/NATS_URL settings reach both.
type natsOptions struct {
	cfg            queue.Config
	connectTimeout time.Duration
	allowInsecure  bool
	resolved       bool // resolve ran
}

// natsEnvFlags are the flags that read the environment. Command-specific
// flags (filters, --yes, --json…) deliberately do not: RECOVER_YES in an
// operator's shell must never answer a purge prompt.
var natsEnvFlags = []string{
	"nats-url", "nats-user", "nats-password", "nats-password-file", "nats-token", "nats-token-file", "nats-nkey", "nats-creds", "context",
	"nats-tls-ca", "nats-tls-cert", "nats-tls-key", "nats-inbox-prefix", "connect-timeout",
	"stream", "subject", "consumer", "dlq-stream", "dlq-subject", "allow-insecure",
}

const natsFlagsHelp = `Connection flags are those of 'worker run' and read the same environment:
RECOVER_<FLAG_NAME> (e.g. RECOVER_STREAM), and the nats CLI's NATS_URL, NATS_USER,
NATS_PASSWORD, NATS_CREDS, NATS_NKEY, NATS_CA, NATS_CERT, NATS_KEY and NATS_CONTEXT;
--context NAME reads a context saved by 'nats context add'.`

func defaultNATSOptions() natsOptions {
	return natsOptions{
		cfg: queue.Config{
			URL: queue.DefaultURL, Stream: queue.DefaultStream, Subject: queue.DefaultSubject,
			Consumer: queue.DefaultConsumer, DLQStream: queue.DefaultDLQStream, DLQSubject: queue.DefaultDLQSubject,
		},
		connectTimeout: 5 * time.Second,
	}
}

func (o *natsOptions) addFlags(fs *pflag.FlagSet) {
	addNATSFlags(fs, &o.cfg)
	fs.DurationVar(&o.connectTimeout, "connect-timeout", o.connectTimeout, "give up when NATS is not reachable within this long")
	fs.BoolVar(&o.allowInsecure, "allow-insecure", false, allowInsecureHelp)
}

// addNATSFlags registers the connection and stream flags every command
// shares with `worker run`, with the same names and defaults.
func addNATSFlags(fs *pflag.FlagSet, n *queue.Config) {
	fs.StringVar(&n.URL, "nats-url", n.URL, "NATS server URLs, comma separated (also NATS_URL)")
	fs.StringVar(&n.User, "nats-user", "", "NATS user (also NATS_USER)")
	fs.StringVar(&n.Password, "nats-password", "", "NATS password (also NATS_PASSWORD; prefer --nats-password-file: a flag shows in ps and shell history)")
	fs.StringVar(&n.PasswordFile, "nats-password-file", "", "file holding the NATS password, read at each (re)connect")
	fs.StringVar(&n.Token, "nats-token", "", "NATS token (prefer --nats-token-file: a flag shows in ps and shell history)")
	fs.StringVar(&n.TokenFile, "nats-token-file", "", "file holding the NATS token, read at each (re)connect")
	fs.StringVar(&n.NKeySeedFile, "nats-nkey", "", "file holding an NKey seed (also NATS_NKEY)")
	fs.StringVar(&n.CredsFile, "nats-creds", "", "NATS credentials file (also NATS_CREDS)")
	fs.StringVar(&n.TLSCA, "nats-tls-ca", "", "CA bundle (PEM) that verifies the NATS server (also NATS_CA)")
	fs.StringVar(&n.TLSCert, "nats-tls-cert", "", "client certificate (PEM) (also NATS_CERT)")
	fs.StringVar(&n.TLSKey, "nats-tls-key", "", "client key (PEM) (also NATS_KEY)")
	fs.String("context", "", "nats CLI context to connect with (~/.config/nats/context/NAME.json; also NATS_CONTEXT); flags and variables win over it")
	fs.StringVar(&n.InboxPrefix, "nats-inbox-prefix", "", `prefix of this connection's reply subjects instead of "_INBOX" (least-privilege users: allow subscribing to PREFIX.> only)`)
	fs.StringVar(&n.Stream, "stream", n.Stream, "request stream")
	fs.StringVar(&n.Subject, "subject", n.Subject, "request subject")
	fs.StringVar(&n.Consumer, "consumer", n.Consumer, "durable pull consumer of the workers")
	fs.StringVar(&n.DLQStream, "dlq-stream", n.DLQStream, "dead-letter stream")
	fs.StringVar(&n.DLQSubject, "dlq-subject", n.DLQSubject, "dead-letter subject")
}

// layerEnv fills the listed flags the command line did not set from the
// environment (through layerConfig, as run does), and no others.
func layerEnv(fs *pflag.FlagSet, names []string, lookupEnv func(string) (string, bool)) error {
	allowed := map[string]bool{}
	for _, n := range names {
		allowed[envName(n)] = true
		for _, a := range envAliases[n] {
			allowed[a] = true
		}
	}
	return layerConfig(fs, func(name string) (string, bool) {
		if !allowed[name] {
			return "", false
		}
		return lookupEnv(name)
	})
}

// resolve layers the environment and the nats context into the flags and
// refuses credentials over plaintext, once: a command that connects late
// (discover --enqueue) calls it first, so a refusal comes before any work.
func (o *natsOptions) resolve(cmd *cobra.Command, extraEnv ...string) error {
	if o.resolved {
		return nil
	}
	if err := layerEnv(cmd.Flags(), append(natsEnvFlags, extraEnv...), os.LookupEnv); err != nil {
		return err
	}
	if err := applyNATSContext(cmd.Flags(), &o.cfg, os.LookupEnv); err != nil {
		return err
	}
	if err := plaintextNATS(o.cfg, o.allowInsecure); err != nil {
		return err
	}
	o.resolved = true
	return nil
}

// connect layers the environment into the flags, then dials NATS, waiting
// at most --connect-timeout for an unreachable server.
func (o *natsOptions) connect(cmd *cobra.Command, extraEnv ...string) (*queue.Conn, error) {
	if err := o.resolve(cmd, extraEnv...); err != nil {
		return nil, err
	}
	if o.connectTimeout <= 0 {
		return nil, fmt.Errorf("connect-timeout: %s is not positive", o.connectTimeout)
	}
	cfg := o.cfg
	cfg.Name = "codearts-recover-worker " + cmd.Name()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.connectTimeout)
	defer cancel()
	conn, err := queue.Connect(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
			return nil, fmt.Errorf("nats %s: not reachable within %s (--connect-timeout)", queue.RedactURL(cfg.URL), o.connectTimeout)
		}
		return nil, err
	}
	o.cfg = conn.Config()
	return conn, nil
}

// checkSubject makes sure messages published on subject land in the stream
// described by info, so a wrong --subject fails once, up front, rather than
// once per message.
func checkSubject(info *jetstream.StreamInfo, subject string) error {
	for _, pattern := range info.Config.Subjects {
		if subjectMatches(pattern, subject) {
			return nil
		}
	}
	return fmt.Errorf("stream %s does not store subject %s (its subjects: %s; check --subject)",
		info.Config.Name, subject, strings.Join(info.Config.Subjects, ", "))
}

// subjectMatches reports whether the NATS subject pattern (with * and >
// wildcards) matches subject.
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

// closeConn flushes and closes a command's connection.
func closeConn(conn *queue.Conn) { _ = conn.Close(5 * time.Second) }

// isTerminal reports whether f is an interactive terminal. Tests replace
// it to reach the interactive paths.
var isTerminal = defaultIsTerminal

func defaultIsTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// terminalWidth is the width of w when it is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	if !isTerminal(w) {
		return 0
	}
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}
