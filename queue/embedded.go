//go:build !nodemo

package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an in-process nats-server with JetStream.
type EmbeddedConfig struct {
	// Dir is the JetStream store directory. Required.
	Dir string
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on. Default: a random free port.
	Port int
	// SyncAlways fsyncs every write (sync_interval: always), the setting
	// the README recommends for no loss on power failure. Default false.
	SyncAlways bool
}

// Embedded is an in-process nats-server, for `worker demo` and tests.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream and waits until it
// accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded nats: Dir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		NoLog:      true,
		// 64 MiB payload ceiling is the server default (1 MiB); keep it.
	}
	if cfg.SyncAlways {
		opts.SyncAlways = true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: not ready within 10s")
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Server exposes the running server (tests restart or inspect it).
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits for it to exit.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
