//go:build !nodemo

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"go.uber.org/zap"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ops"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ui"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/retry"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

// demoPage is the demo's ops listener (/metrics, /healthz, /readyz) and
// status page, each on its own listener as `worker run` serves them.
type demoPage struct {
	metrics *ops.Metrics // the pool's observer, also with the page off
	srv     *ops.Server  // nil with --http-addr ""
	ui      *ui.Server   // nil with --ui-addr ""
	uiLn    *ops.Listener
	url     string
}

// startDemoPage serves /metrics on o.httpAddr and the page on o.uiAddr or,
// when a default is taken, on a free port of the same host, and prints the
// page's URL on stderr. With --ui-actions the demo makes a token of its own
// and prints it in the URL's fragment, which the page keeps and the
// browser never sends to a server.
func startDemoPage(ctx context.Context, o demoOptions, log *zap.Logger, stderr io.Writer) (_ *demoPage, err error) {
	reg := ops.NewRegistry(buildinfo.Get(buildVersion()))
	m, err := ops.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &demoPage{metrics: m}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	// retry listens on addr or, when the default is taken, on a free port.
	retryFree := func(addr string, given bool, listen func(string) error) error {
		err := listen(addr)
		if errors.Is(err, syscall.EADDRINUSE) && !given {
			host, _, _ := net.SplitHostPort(addr)
			err = listen(net.JoinHostPort(host, "0"))
		}
		return err
	}
	if o.httpAddr != "" {
		err := retryFree(o.httpAddr, o.httpAddrGiven, func(addr string) error {
			srv := ops.New(ops.Config{Addr: addr, Gatherer: reg, Logger: log})
			if err := srv.Start(ctx); err != nil {
				return err
			}
			p.srv = srv
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if o.uiAddr == "" {
		return p, nil
	}
	cfg := ui.Config{Actions: o.uiActions, Totals: m.Totals, Logger: log}
	if p.srv != nil {
		cfg.Ready = p.srv.Ready
	}
	if o.uiActions {
		cfg.Token = rand.Text()
	}
	p.ui = ui.New(cfg)
	err = retryFree(o.uiAddr, o.uiAddrGiven, func(addr string) error {
		ln, err := ops.Listen(ctx, ops.ListenConfig{Addr: addr, Flag: "ui-addr", Handler: p.ui, Logger: log})
		p.uiLn = ln
		return err
	})
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(p.uiLn.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p.url = "http://" + net.JoinHostPort(host, port) + "/"
	if cfg.Token != "" {
		p.url += "#token=" + cfg.Token
	}
	fmt.Fprintf(stderr, "status page: %s\n", p.url)
	return p, nil
}

// attach gives the page the streams and the pool.
func (p *demoPage) attach(conn *queue.Conn, pool *worker.Pool, limiter *retry.Limiter, o demoOptions, log *zap.Logger) {
	// The gauges read the pool as run's do: the demo's one region.
	p.metrics.SetState(ops.State{InFlight: pool.InFlight, Regions: regionGauges(pool, func(string) *retry.Limiter { return limiter }, []string{demoRegion})})
	if p.ui == nil {
		return
	}
	p.ui.Attach(uiBackend(conn, liveState(pool, limiter, o.concurrency, o.rateLimit, demoRegion), log))
}

// close stops the page's listener and a replay from the page, then the
// ops listener.
func (p *demoPage) close() {
	if p.uiLn != nil {
		_ = p.uiLn.Close()
	}
	if p.ui != nil {
		p.ui.Close()
	}
	if p.srv != nil {
		_ = p.srv.Close()
	}
}
