package ops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Config configures a Server.
type Config struct {
	// Addr is the address Start listens on, e.g. ":8080". Required by Start.
	Addr string
	// Gatherer is served on /metrics. nil = an empty registry.
	Gatherer prometheus.Gatherer
	// Logger receives readiness changes and serve errors. nil = no logs.
	Logger *zap.Logger
	// Hosts is the Host allow-list (--allowed-hosts). nil = IP literals
	// and localhost only.
	Hosts *Hosts
}

// Server serves /healthz, /readyz and /metrics, and nothing else (the status
// page has its own listener). Checks can be added at any time, so readiness
// grows as the process wires itself (and as other parts of the worker gain
// state worth gating on).
type Server struct {
	cfg Config
	log *zap.Logger
	mux *http.ServeMux

	mu       sync.Mutex
	checks   []check
	lastFail string // last /readyz failure text, "" when ready; for logging changes only

	ln *Listener
}

type check struct {
	name string
	fn   func() error
}

// New returns a Server; it listens only after Start.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	return s
}

// AddCheck adds a readiness check. fn must be fast and local (it runs on
// every probe) and return nil when ready or an error saying why not.
// Checks run in the order they were added.
func (s *Server) AddCheck(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name: name, fn: fn})
}

// Ready runs every check and returns nil, or an error naming each failing
// check and its reason.
func (s *Server) Ready() error {
	s.mu.Lock()
	checks := s.checks
	s.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler returns the HTTP handler of the three endpoints.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	// Alive means this goroutine ran: nothing else is consulted on purpose.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	err := s.Ready()
	s.logChange(err)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready\n%s\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// logChange logs readiness transitions (not every probe).
func (s *Server) logChange(err error) {
	text := ""
	if err != nil {
		text = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	s.mu.Lock()
	changed := text != s.lastFail
	s.lastFail = text
	s.mu.Unlock()
	switch {
	case !changed:
	case err != nil:
		s.log.Warn("not ready", zap.String("reason", text))
	default:
		s.log.Info("ready")
	}
}

// Start listens on Config.Addr, behind the Host allow-list, and serves in
// the background until Shutdown or Close. A listen error (address in use)
// is returned at once; ctx bounds only the listen.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.Addr == "" {
		return errors.New("ops: Addr is required")
	}
	ln, err := Listen(ctx, ListenConfig{Addr: s.cfg.Addr, Flag: "http-addr", Handler: s.mux, Hosts: s.cfg.Hosts, Logger: s.log})
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr is the address the server listens on (useful with port 0); "" before
// Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr()
}

// Shutdown stops the server gracefully within ctx (answers being written
// finish) and waits for its goroutine; a no-op when Start was not called.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	return s.ln.Shutdown(ctx)
}

// Close stops the server at once (open connections are cut) and waits for
// its goroutine; a no-op when Start was not called. For the end of the
// process, when a cut scrape costs nothing.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}
