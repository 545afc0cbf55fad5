package queue

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config says how to reach NATS and what the worker's streams and consumer
// look like. The zero value of every field means its documented default.
type Config struct {
	// URL is the NATS server URL list (comma separated). Default
	// nats://127.0.0.1:4222.
	URL string
	// User and Password authenticate with user/password. Default none.
	User     string
	Password string
	// Token authenticates with a token. Default none.
	Token string
	// PasswordFile and TokenFile hold the password (with User) or the
	// token instead of Password and Token, so the secret is in neither
	// the process's arguments nor its environment. They are read at every
	// (re)connect: a rotated secret file is picked up without a restart.
	// Surrounding white space is ignored. Default none.
	PasswordFile string
	TokenFile    string
	// NKeySeedFile is a file holding an NKey seed. Default none.
	NKeySeedFile string
	// CredsFile is a NATS credentials file (JWT + seed). Default none.
	CredsFile string
	// TLSCA is a PEM CA bundle that verifies the server. Default: the
	// system roots when the URL is tls://.
	TLSCA string
	// TLSCert and TLSKey are a client certificate and key. Default none.
	TLSCert string
	TLSKey  string
	// Name is the connection name shown by the server. Default
	// "codearts-recover-worker".
	Name string
	// InboxPrefix replaces "_INBOX" for this connection's reply subjects,
	// so a least-privilege user may subscribe to its own inboxes only.
	// Default "_INBOX".
	InboxPrefix string

	// Stream is the request stream. Default CODEARTS_RECOVER.
	Stream string
	// Subject is the request subject. Default codearts.build.recover.
	Subject string
	// Consumer is the durable pull consumer. Default recover-worker.
	Consumer string
	// DLQStream is the dead-letter stream. Default CODEARTS_RECOVER_DLQ.
	DLQStream string
	// DLQSubject is the dead-letter subject. Default codearts.build.recover.dlq.
	DLQSubject string
	// DLQMaxAge is how long dead letters are kept. Default 14 days.
	DLQMaxAge time.Duration
	// ResultStream holds one result event per finished request. Default
	// CODEARTS_RECOVER_RESULTS.
	ResultStream string
	// ResultSubject is where result events go. Default
	// codearts.build.recover.result; "-" turns result events off.
	ResultSubject string
	// ResultMaxAge is how long result events are kept. Default 7 days.
	ResultMaxAge time.Duration
	// Replicas is the replica count of the streams the worker creates.
	// Default 1; use 3 on a cluster.
	Replicas int
	// DuplicateWindow is the request stream's Nats-Msg-Id window. Default
	// 2 minutes (the dead-letter stream always keeps at least one hour so a
	// crash between dead-lettering and acking never makes two).
	DuplicateWindow time.Duration

	// AckWait is how long the server waits for an ack (or an InProgress)
	// before redelivering. Default 30s. The worker sends InProgress every
	// AckWait/3 while it works on a message, so a short AckWait only bounds
	// how fast a crashed worker's messages come back.
	AckWait time.Duration
	// MaxDeliver is the consumer's delivery limit. Default 5.
	MaxDeliver int
	// MaxAckPending bounds the messages the whole fleet holds unacked.
	// Default 1000.
	MaxAckPending int
	// FetchWait is how long one pull request waits for messages. Default 5s.
	FetchWait time.Duration
	// NoCreate stops the worker from creating or updating streams and the
	// consumer; they must then exist. Default false (create or update).
	NoCreate bool
	// UpdateStreams lets the worker change the settings of streams that
	// already exist (replicas, limits, duplicate window, discard policy) to
	// its own. Default false: an existing stream keeps what its operator
	// chose, and every difference is logged at start (see StreamDrift). A
	// missing subject is added either way.
	UpdateStreams bool
	// MaxBodyBytes is the largest request body the worker accepts (its
	// decoder's limit, --max-body-bytes). The request stream the worker
	// creates stores messages of at most this plus 8 KiB of headers, so an
	// oversized request is refused when it is published. Default 64 KiB.
	MaxBodyBytes int

	// Logger receives connection events. nil means no logging.
	Logger *zap.Logger
}

// Defaults of Config.
const (
	DefaultURL           = "nats://127.0.0.1:4222"
	DefaultStream        = "CODEARTS_RECOVER"
	DefaultSubject       = "codearts.build.recover"
	DefaultConsumer      = "recover-worker"
	DefaultDLQStream     = "CODEARTS_RECOVER_DLQ"
	DefaultDLQSubject    = "codearts.build.recover.dlq"
	DefaultResultStream  = "CODEARTS_RECOVER_RESULTS"
	DefaultResultSubject = "codearts.build.recover.result"
	// ResultsOff as ResultSubject turns result events off.
	ResultsOff = "-"
	// DefaultMaxBodyBytes is the default of MaxBodyBytes: a valid request
	// is a few hundred bytes.
	DefaultMaxBodyBytes = 64 << 10
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	set := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	set(&c.URL, DefaultURL)
	set(&c.Name, "codearts-recover-worker")
	set(&c.Stream, DefaultStream)
	set(&c.Subject, DefaultSubject)
	set(&c.Consumer, DefaultConsumer)
	set(&c.DLQStream, DefaultDLQStream)
	set(&c.DLQSubject, DefaultDLQSubject)
	set(&c.ResultStream, DefaultResultStream)
	set(&c.ResultSubject, DefaultResultSubject)
	if c.ResultMaxAge == 0 {
		c.ResultMaxAge = 7 * 24 * time.Hour
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = 14 * 24 * time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1000
	}
	if c.FetchWait == 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}

// Validate reports the first invalid field of c (after defaults), naming it.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, a...)...))
	}
	if c.Subject == c.DLQSubject {
		bad("dlq-subject", "must differ from the request subject %q", c.Subject)
	}
	if c.Stream == c.DLQStream {
		bad("dlq-stream", "must differ from the request stream %q", c.Stream)
	}
	if c.Results() && (c.ResultSubject == c.Subject || c.ResultSubject == c.DLQSubject) {
		bad("result-subject", "must differ from the request and dead-letter subjects")
	}
	if c.Results() && (c.ResultStream == c.Stream || c.ResultStream == c.DLQStream) {
		bad("result-stream", "must differ from the request and dead-letter streams")
	}
	if c.AckWait < time.Second {
		bad("ack-wait", "%s is below 1s", c.AckWait)
	}
	if c.MaxDeliver < 1 {
		bad("max-deliver", "%d is below 1", c.MaxDeliver)
	}
	if c.MaxAckPending < 1 {
		bad("max-ack-pending", "%d is below 1", c.MaxAckPending)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas", "%d is not in 1..5", c.Replicas)
	}
	if c.DuplicateWindow < 0 {
		bad("duplicate-window", "%s is negative", c.DuplicateWindow)
	}
	if c.FetchWait < 100*time.Millisecond {
		bad("fetch-wait", "%s is below 100ms", c.FetchWait)
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxBodyBytes {
		bad("max-body-bytes", "%d is not in 1..%d", c.MaxBodyBytes, maxBodyBytes)
	}
	for _, n := range []struct{ field, name string }{
		{"stream", c.Stream}, {"dlq-stream", c.DLQStream}, {"result-stream", c.ResultStream}, {"consumer", c.Consumer},
	} {
		if strings.ContainsAny(n.name, " \t\r\n.*>/\\") {
			bad(n.field, "%q is not a valid JetStream name (no spaces, '.', '*', '>', '/' or '\\')", n.name)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("nats-tls-cert", "client certificate and key must be given together")
	}
	if c.Token != "" && c.User != "" {
		bad("nats-token", "token and user/password are exclusive")
	}
	if c.TokenFile != "" && c.User != "" {
		bad("nats-token-file", "token and user/password are exclusive")
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("nats-password-file", "nats-password and nats-password-file are exclusive")
	}
	if c.Token != "" && c.TokenFile != "" {
		bad("nats-token-file", "nats-token and nats-token-file are exclusive")
	}
	if c.PasswordFile != "" && c.User == "" {
		bad("nats-password-file", "needs nats-user")
	}
	for _, f := range []struct{ field, path string }{
		{"nats-password-file", c.PasswordFile}, {"nats-token-file", c.TokenFile},
		{"nats-creds", c.CredsFile}, {"nats-nkey", c.NKeySeedFile}, {"nats-tls-ca", c.TLSCA},
		{"nats-tls-cert", c.TLSCert}, {"nats-tls-key", c.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad(f.field, "%v", err)
		}
	}
	return errors.Join(errs...)
}

// maxBodyBytes keeps MaxBodyBytes plus the header room within a stream's
// MaxMsgSize (an int32).
const maxBodyBytes = math.MaxInt32 - requestHeaderRoom

// Results reports whether result events are on.
func (c Config) Results() bool { return c.ResultSubject != ResultsOff }
