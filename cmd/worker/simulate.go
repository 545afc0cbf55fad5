package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
)

func newSimulateCmd() *cobra.Command {
	var (
		addr                         string
		latency, jitter, retryAfter  time.Duration
		errorRate, throttle, backend float64
		rateLimit                    float64
		prefixes                     bool
		seed                         uint64
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Serve the simulated CodeArts Build API (for local runs with a real NATS)",
		Long: `simulate serves POST /v3/jobs/{job_id}/recover like CodeArts Build, verifying the
SDK's AK/SK signature against HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (or
CLOUD_SDK_AK/CLOUD_SDK_SK), with optional faults. GET /stats returns the calls
it saw as JSON. Point the worker at it with --endpoint http://ADDR.`,
		Example: `  HUAWEICLOUD_SDK_AK=AK HUAWEICLOUD_SDK_SK=SK worker simulate --addr 127.0.0.1:8090 --latency 50ms --error-rate 0.05
  worker run --endpoint http://127.0.0.1:8090 --project-id demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := layerConfig(cmd.Flags(), os.LookupEnv); err != nil {
				return err
			}
			ak, sk := firstEnv("HUAWEICLOUD_SDK_AK", "CLOUD_SDK_AK"), firstEnv("HUAWEICLOUD_SDK_SK", "CLOUD_SDK_SK")
			if ak == "" || sk == "" {
				return fmt.Errorf("credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (the simulator verifies signatures with them)")
			}
			opts := []codeartssim.Option{
				codeartssim.WithCredentials(ak, sk),
				codeartssim.WithLatency(latency, jitter),
				codeartssim.WithErrorRate(errorRate, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable),
				codeartssim.WithThrottle(throttle),
				codeartssim.WithBackendThrottle(backend),
				codeartssim.WithRetryAfter(retryAfter),
			}
			if rateLimit > 0 {
				opts = append(opts, codeartssim.WithRateLimit(rateLimit, max(1, int(rateLimit/10))))
			}
			if prefixes {
				opts = append(opts, codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
			}
			if seed != 0 {
				opts = append(opts, codeartssim.WithSeed(seed))
			}
			sim := codeartssim.New(opts...)
			if err := sim.Start(addr); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "simulated CodeArts API on %s (stats: %s/stats)\n", sim.URL(), sim.URL())
			<-cmd.Context().Done()
			return sim.Close()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address")
	fs.DurationVar(&latency, "latency", 0, "answer latency")
	fs.DurationVar(&jitter, "jitter", 0, "latency jitter")
	fs.Float64Var(&errorRate, "error-rate", 0, "share of calls answered 500/502/503")
	fs.Float64Var(&throttle, "throttle-rate", 0, "share of calls answered 429 APIG.0308")
	fs.Float64Var(&backend, "backend-throttle-rate", 0, "share of calls answered 500 CB.00060211")
	fs.DurationVar(&retryAfter, "retry-after", time.Second, "Retry-After sent with throttles")
	fs.Float64Var(&rateLimit, "rate-limit", 0, "admitted calls per second; above it 429 APIG.0308 (0 = none)")
	fs.BoolVar(&prefixes, "prefix-outcomes", true, "job ids starting 400/403/404 answer that status")
	fs.Uint64Var(&seed, "seed", 0, "random seed (0 = random)")
	return cmd
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
