package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Hosts is the Host header allow-list every listener of the worker checks:
// IP literals, "localhost", and the names an operator adds
// (--allowed-hosts). A request naming any other host is answered 421
// Misdirected Request, so a web page whose name an attacker rebinds to
// 127.0.0.1 (or to the pod's address) cannot read or drive the worker from
// an operator's browser: the browser sends the attacker's name as Host.
type Hosts struct {
	names    map[string]bool
	suffixes []string // ".example.com" from "*.example.com" or ".example.com"
}

// NewHosts returns the allow-list with extra names added. A name is a DNS
// name without port ("recover-worker.ops.svc"); "*.example.com" or
// ".example.com" admits every name under example.com (not example.com
// itself). The error names the flag.
func NewHosts(extra []string) (*Hosts, error) {
	h := &Hosts{names: map[string]bool{"localhost": true}}
	for _, n := range extra {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		suffix := strings.HasPrefix(n, "*.") || strings.HasPrefix(n, ".")
		name := strings.TrimPrefix(strings.TrimPrefix(n, "*"), ".")
		if name == "" || strings.ContainsAny(name, ":/*@ []") {
			return nil, fmt.Errorf("allowed-hosts: %q is not a host name (no port, no scheme; *.example.com for every name under example.com)", n)
		}
		if suffix {
			h.suffixes = append(h.suffixes, "."+name)
		} else {
			h.names[name] = true
		}
	}
	return h, nil
}

// Allowed reports whether a request's Host (with or without a port) is on
// the list. An empty Host (HTTP/1.0) is not.
func (h *Hosts) Allowed(host string) bool {
	if host == "" {
		return false
	}
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
	if ip, _, _ := strings.Cut(host, "%"); net.ParseIP(ip) != nil {
		return true
	}
	if h.names[host] {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// Guard answers 421 to a request whose Host is not allowed and passes the
// others to next.
func (h *Hosts) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Allowed(r.Host) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusMisdirectedRequest)
			_, _ = w.Write([]byte("misdirected request: this host name is not served here (the worker's --allowed-hosts lists the names it answers besides IP addresses and localhost)\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ListenConfig configures Listen.
type ListenConfig struct {
	// Addr is the address to listen on, e.g. ":8080". Required.
	Addr string
	// Flag names Addr in errors ("http-addr", "ui-addr").
	Flag string
	// Handler serves every request whose Host is allowed. Required.
	Handler http.Handler
	// Hosts is the Host allow-list. nil = IP literals and localhost only.
	Hosts *Hosts
	// Logger receives serve errors. nil = no logs.
	Logger *zap.Logger
}

// Listener is one HTTP listener of the worker, behind the Host allow-list,
// with timeouts that bound slow clients.
type Listener struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// Listen listens on cfg.Addr and serves in the background until Shutdown
// or Close. A listen error (address in use) is returned at once, naming
// the flag; ctx bounds only the listen.
func Listen(ctx context.Context, cfg ListenConfig) (*Listener, error) {
	if cfg.Addr == "" {
		return nil, fmt.Errorf("%s: an address is required", cfg.Flag)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Hosts == nil {
		cfg.Hosts, _ = NewHosts(nil)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Flag, err)
	}
	l := &Listener{ln: ln, done: make(chan struct{})}
	l.srv = &http.Server{
		Handler:           cfg.Hosts.Guard(cfg.Handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          zap.NewStdLog(cfg.Logger.Named("http")),
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http server stopped", zap.String("addr", cfg.Addr), zap.Error(err))
		}
	}()
	return l, nil
}

// Addr is the address the listener is bound to (useful with port 0).
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Shutdown stops the listener gracefully within ctx (answers being written
// finish) and waits for its goroutine.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		_ = l.srv.Close()
	}
	<-l.done
	return err
}

// Close stops the listener at once (open connections are cut) and waits
// for its goroutine.
func (l *Listener) Close() error {
	err := l.srv.Close()
	<-l.done
	return err
}
