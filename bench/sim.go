package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

// simMain serves the simulated API until stdin closes or SIGTERM. It prints
// "url https://HOST:PORT" once it listens. Besides the API and GET /stats it
// answers POST /bench/outage?for=8s: every recover gets 503 from now on for
// that long.
func simMain(args []string) int {
	fs := flag.NewFlagSet(roleSim, flag.ContinueOnError)
	latency := fs.Duration("latency", 0, "answer latency")
	jitter := fs.Duration("jitter", 0, "latency jitter (uniform, added)")
	errorRate := fs.Float64("error-rate", 0, "share of calls answered 500")
	rateLimit := fs.Float64("rate-limit", 0, "admitted calls per second (0 = none); above it 429 APIG.0308")
	seed := fs.Uint64("seed", 1, "random seed")
	certFile := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	keyFile := fs.String("tls-key", "", "and this key (PEM)")
	h1 := fs.Bool("h1", false, "with TLS, offer only HTTP/1.1 (no h2)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := []codeartssim.Option{
		codeartssim.WithCredentials(benchAK, benchSK),
		codeartssim.WithLatency(*latency, *jitter),
		codeartssim.WithErrorRate(*errorRate, http.StatusInternalServerError),
		codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()),
		codeartssim.WithSeed(*seed),
	}
	if *rateLimit > 0 {
		// The burst `worker simulate` uses: a tenth of a second's worth.
		opts = append(opts, codeartssim.WithRateLimit(*rateLimit, max(1, int(*rateLimit/10))))
	}
	sim := codeartssim.New(opts...)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /bench/outage", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d <= 0 {
			http.Error(w, "for: a positive duration", http.StatusBadRequest)
			return
		}
		now := time.Now()
		sim.Configure(codeartssim.WithOutageWindow(now, now.Add(d)))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", sim)

	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if *certFile != "" {
		if *h1 {
			srv.TLSConfig = &tls.Config{NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
		}
		go func() { _ = srv.ServeTLS(ln, *certFile, *keyFile) }()
		fmt.Printf("url https://%s\n", ln.Addr())
	} else {
		go func() { _ = srv.Serve(ln) }()
		fmt.Printf("url http://%s\n", ln.Addr())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the orchestrator closing stdin ends us too
		stop()
	}()
	<-ctx.Done()
	_ = sim.Close()
	_ = srv.Close()
	return 0
}
