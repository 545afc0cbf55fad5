package queue

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Conn is a NATS connection with its JetStream context and the resolved
// Config. It is safe for concurrent use.
type Conn struct {
	NC  *nats.Conn
	JS  jetstream.JetStream
	cfg Config
	log *zap.Logger

	// violation is the last permission violation the server reported on
	// this connection (nil: none): a JetStream request it refused to route
	// only times out, so Await reads the reason here.
	violation atomic.Pointer[error]
	waiting   atomic.Pointer[error] // Await's last failed try, while it waits
	warned    sync.Map              // drifts logged (ensureStream)
}

// Connect dials NATS with the settings that keep the no-loss guarantee:
// it reconnects forever and detects a dead link within seconds. It returns
// once the first connection is up (or ctx ends).
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := &Conn{cfg: cfg, log: log}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		// Reconnect forever: a worker that gives up on NATS holds no
		// messages anyway, but it would need a restart to work again.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		// Keep retrying the first connect too, so a worker started before
		// its NATS (common in Kubernetes) waits instead of crash-looping.
		nats.RetryOnFailedConnect(true),
		// Detect a black-holed link in ~15s rather than the default 4 min,
		// so InProgress heartbeats are known to be failing long before the
		// server's AckWait hands the message to someone else.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		// Publishes made while disconnected are buffered and replayed on
		// reconnect; we only publish acked writes (we wait for the ack), so
		// a small buffer bounds memory without hiding failures.
		nats.ReconnectBufSize(1 << 20),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || err == nil {
				return // our own Close
			}
			log.Warn("nats disconnected; reconnecting", zap.Error(err))
		}),
		// Each failed (re)connect attempt, the first connection included:
		// without this a wrong URL, certificate or credential would only
		// show as "not ready".
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats connect attempt failed; retrying", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				c.violation.Store(&err)
			}
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", zap.String("subscription", subj), zap.Error(err))
		}),
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats-nkey: %w", err)
		}
		opts = append(opts, o)
	}
	switch {
	case cfg.User != "" && cfg.PasswordFile != "":
		password, err := newSecretFile("nats-password-file", cfg.PasswordFile, log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfoHandler(func() (string, string) { return cfg.User, password.read() }))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	switch {
	case cfg.TokenFile != "":
		token, err := newSecretFile("nats-token-file", cfg.TokenFile, log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.TokenHandler(token.read))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(cfg.URL), err)
	}
	// With RetryOnFailedConnect, Connect returns before the first
	// connection; wait for it (each failed attempt is logged above) so a
	// worker started before its NATS waits instead of crash-looping.
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(cfg.URL), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if nc.IsClosed() {
			// nats.go gives up only on an authentication error that a
			// server repeated: say which, and what to check.
			err := nc.LastError()
			if err == nil {
				return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(cfg.URL), nats.ErrConnectionClosed)
			}
			return nil, fmt.Errorf("connect to nats %s: %w (check --nats-user/--nats-password, --nats-token, --nats-nkey or --nats-creds)",
				RedactURL(cfg.URL), err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	c.NC, c.JS = nc, js
	return c, nil
}

// Config returns the resolved configuration (defaults applied).
func (c *Conn) Config() Config { return c.cfg }

// Connected reports whether the link to NATS is up.
func (c *Conn) Connected() bool { return c.NC.IsConnected() }

// Close drains the connection: pending publishes and acks are flushed
// before it closes. It waits at most timeout.
func (c *Conn) Close(timeout time.Duration) error {
	if c.NC.IsClosed() {
		return nil
	}
	done := make(chan struct{})
	c.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
	if drained := c.NC.Drain() == nil; !drained {
		// Draining needs a live connection; without one (NATS down at
		// shutdown) closing is all there is to do: unacked messages come
		// back after AckWait.
		c.NC.Close()
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		c.NC.Close()
	}
	return nil
}

// RedactURL hides the user info (user, password or token) of every URL in
// a comma-separated NATS URL list, for logs and errors; a part that does
// not parse is replaced whole.
func RedactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "[unparsable url redacted]"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Await runs step until it succeeds, for a start-up that must wait for
// JetStream rather than give up: while NATS elects leaders (every rolling
// upgrade), a cluster lacks quorum, or an operator has not yet provisioned
// the streams of a NoCreate worker. Each failed try is logged at warn with
// its reason, is what Waiting reports until the next one, and is followed
// by an exponential backoff (250 ms doubling to 10 s, jittered) for as long
// as it takes. A failure that cannot heal by waiting (Permanent, or a
// permission violation the server reported during the try) is returned at
// once, naming what; so is ctx's error when ctx ends.
//
// step gets ctx as it is: each JetStream call in it is bounded by the
// client's own API timeout (5 s), so one slow answer costs one try.
func (c *Conn) Await(ctx context.Context, what string, step func(context.Context) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	// On purpose: NATS may take any time to come back, and a worker that
	// gave up would only be restarted to wait again. SIGTERM ends the wait.
	b.MaxElapsedTime = 0
	defer c.waiting.Store(nil)
	tries := 0
	return backoff.RetryNotify(func() error {
		tries++
		before := c.violation.Load()
		err := step(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if v := c.violation.Load(); v != nil && v != before {
			return backoff.Permanent(fmt.Errorf("%s: %w (the NATS user lacks a permission the worker needs; then: %w)", what, *v, err))
		}
		if Permanent(err) {
			return backoff.Permanent(fmt.Errorf("%s: %w", what, err))
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		c.waiting.Store(&err)
		c.log.Warn("JetStream not ready; trying again", zap.String("step", what), zap.Error(err),
			zap.Int("try", tries), zap.Duration("retry_in", next))
	})
}

// Waiting returns the last failure of a running Await (nil when none runs
// or its last try has not failed), for a readiness check to say why.
func (c *Conn) Waiting() error {
	if err := c.waiting.Load(); err != nil {
		return *err
	}
	return nil
}

// Permanent reports whether err, met while connecting to NATS or setting up
// the worker's streams and consumers, cannot heal by trying again, so that
// a start-up stops with it instead of waiting:
//   - bad credentials (nats.go already gives up when a server repeats an
//     authentication error) and permission violations;
//   - a stream the worker cannot use (ErrIncompatible) and names the client
//     refuses;
//   - JetStream refusing the request as asked: API errors with code 400,
//     except those a cluster in motion gives (no suitable peers yet, a
//     member change or stream move in progress, a create racing another
//     worker's), plus the 5xx that are about the configuration (invalid
//     stream configuration, replicas above 1 without clustering, a feature
//     clustering does not support).
//
// Everything else heals by waiting: timeouts, no responders, JetStream not
// enabled or not available yet, a stream or consumer not found (not yet
// provisioned), other 5xx.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range permanentErrors {
		if errors.Is(err, target) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	if apiErr.Code == 400 {
		return !movingCluster[apiErr.ErrorCode]
	}
	return configRefusals[apiErr.ErrorCode]
}

var permanentErrors = []error{
	ErrIncompatible,
	nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
	nats.ErrPermissionViolation,
	jetstream.ErrStreamNameRequired, jetstream.ErrInvalidStreamName, jetstream.ErrInvalidConsumerName,
	jetstream.ErrInvalidSubject, jetstream.ErrInvalidBucketName, jetstream.ErrNotPullConsumer, jetstream.ErrBadBucket,
}

// movingCluster are the JetStream 400s that a cluster gives while it
// changes (nodes restarting or catching up, a peer being replaced) or while
// another worker creates the same stream or consumer: the next try can
// succeed.
var movingCluster = map[jetstream.ErrorCode]bool{
	10005: true, // no suitable peers for placement
	10040: true, // peer not a member
	10044: true, // server is not a member of the cluster
	10124: true, // stream move already in progress
	10202: true, // cluster member change is in progress
	10226: true, // stream reconfiguration already in progress
	10058: true, // stream name already in use with a different configuration (a concurrent create)
	10013: true, // consumer name already in use (a concurrent create)
	10148: true, // consumer already exists (a concurrent create)
}

// configRefusals are the JetStream errors outside code 400 that refuse the
// configuration itself.
var configRefusals = map[jetstream.ErrorCode]bool{
	10052: true, // stream configuration invalid
	10074: true, // replicas > 1 not supported in non-clustered mode
	10036: true, // not currently supported in clustered mode
	10010: true, // JetStream clustering support required
}
