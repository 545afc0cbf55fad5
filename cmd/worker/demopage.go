package main

import (
	"context"
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

// demoPage is the demo's ops server with the status page, as `worker run`
// serves them.
type demoPage struct {
	metrics *ops.Metrics // the pool's observer, also with the page off
	srv     *ops.Server  // nil with --http-addr ""
	ui      *ui.Server
	url     string
}

// startDemoPage serves the page on o.httpAddr or, when that default is
// taken, on a free port of the same host, and prints its URL on stderr.
func startDemoPage(ctx context.Context, o demoOptions, log *zap.Logger, stderr io.Writer) (*demoPage, error) {
	reg := ops.NewRegistry(buildinfo.Get(buildVersion()))
	m, err := ops.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &demoPage{metrics: m}
	if o.httpAddr == "" {
		return p, nil
	}
	p.ui = ui.New(ui.Config{Actions: o.uiActions, Gatherer: reg, Logger: log})
	start := func(addr string) (*ops.Server, error) {
		srv := ops.New(ops.Config{Addr: addr, Gatherer: reg, Logger: log})
		srv.Handle("/", p.ui)
		return srv, srv.Start(ctx)
	}
	srv, err := start(o.httpAddr)
	if errors.Is(err, syscall.EADDRINUSE) && !o.httpAddrGiven {
		host, _, _ := net.SplitHostPort(o.httpAddr)
		srv, err = start(net.JoinHostPort(host, "0"))
	}
	if err != nil {
		p.ui.Close()
		return nil, err
	}
	p.srv = srv
	host, port, _ := net.SplitHostPort(srv.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p.url = "http://" + net.JoinHostPort(host, port) + "/"
	fmt.Fprintf(stderr, "status page: %s\n", p.url)
	return p, nil
}

// attach gives the page the streams and the pool.
func (p *demoPage) attach(conn *queue.Conn, pool *worker.Pool, limiter *retry.Limiter, o demoOptions, log *zap.Logger) {
	if p.ui == nil {
		return
	}
	p.ui.Attach(uiBackend(conn, liveState(pool, limiter, o.concurrency, o.rateLimit, demoRegion), log))
}

// close stops a replay from the page, then the server.
func (p *demoPage) close() {
	if p.ui != nil {
		p.ui.Close()
	}
	if p.srv != nil {
		_ = p.srv.Close()
	}
}
