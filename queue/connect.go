package queue

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

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
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
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
	// connection; wait for it so a wrong URL is reported at start.
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(cfg.URL), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if nc.IsClosed() {
			return nil, fmt.Errorf("connect to nats %s: %w", RedactURL(cfg.URL), nats.ErrConnectionClosed)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js, cfg: cfg, log: log}, nil
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
