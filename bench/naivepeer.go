package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/codearts-recover-worker/codearts-recover-worker/bench/naive"
)

// naiveMain runs the naive peer as a worker process the orchestrator treats
// like `worker run`: /readyz answers 200 once the consumer is bound, and
// SIGTERM stops it.
func naiveMain(args []string) int {
	fs := flag.NewFlagSet(roleNaive, flag.ContinueOnError)
	natsURL := fs.String("nats", "", "NATS URL")
	endpoint := fs.String("endpoint", "", "API endpoint (the simulator)")
	concurrency := fs.Int("concurrency", 64, "goroutines at most")
	ackWait := fs.Duration("ack-wait", 3*time.Second, "consumer AckWait (the orchestrator created the consumer)")
	httpAddr := fs.String("http-addr", "127.0.0.1:0", "address of /readyz")
	logLevel := fs.String("log-level", "info", "log level (JSON on stderr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := runNaive(*natsURL, *endpoint, *concurrency, *ackWait, *httpAddr, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		return 1
	}
	return 0
}

func runNaive(natsURL, endpoint string, concurrency int, ackWait time.Duration, httpAddr, logLevel string) error {
	lvl, err := zapcore.ParseLevel(logLevel)
	if err != nil {
		return err
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	log, err := cfg.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p, err := naive.New(ctx, naive.Config{
		NATSURL: natsURL, Queue: queueConfig(natsURL, ackWait).WithDefaults(), Endpoint: endpoint,
		AK: benchAK, SK: benchSK, ProjectID: benchProjectID, Concurrency: concurrency, Logger: log,
	})
	if err != nil {
		return err
	}
	defer p.Close()

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", httpAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	err = p.Run(ctx)
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		err = errors.Join(err, serr)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
