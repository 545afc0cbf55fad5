package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Roles of a re-executed child; the leading underscore keeps them apart
// from anything a user would type.
const (
	roleSim   = "_sim"
	roleNaive = "_naive"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case roleSim:
			os.Exit(simMain(os.Args[2:]))
		case roleNaive:
			os.Exit(naiveMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain(os.Args[1:]))
}

type options struct {
	concurrency int
	ackWait     time.Duration
	logLevel    string
	tls         string // "h2", "h1" or "off"
	workerArgs  []string
	self        string
	logDir      string
}

// variantsFlag collects -variant NAME=BINARY [ENV=VALUE …].
type variantsFlag []peer

func (v *variantsFlag) String() string { return fmt.Sprint(len(*v)) }

func (v *variantsFlag) Set(s string) error {
	name, rest, ok := strings.Cut(s, "=")
	f := strings.Fields(rest)
	if !ok || name == "" || len(f) == 0 {
		return fmt.Errorf("%q: want NAME=BINARY [ENV=VALUE …]", s)
	}
	for _, e := range f[1:] {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("%q: %q is not ENV=VALUE", s, e)
		}
	}
	if name == "pool" || name == "naive" {
		return fmt.Errorf("%q: the names pool and naive are taken", s)
	}
	*v = append(*v, peer{name: name, bin: f[0], env: f[1:]})
	return nil
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	names := make([]string, 0, len(scenarios()))
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	var (
		o        options
		variants variantsFlag
	)
	list := fs.String("scenarios", strings.Join(names, ","), "comma-separated scenarios to run: "+strings.Join(names, ", "))
	n := fs.Int("n", 0, "requests per scenario (0 = each scenario's own N)")
	scale := fs.Float64("scale", 1, "multiply each scenario's N (e.g. 0.2 for a quick run)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "--concurrency of each worker")
	fs.DurationVar(&o.ackWait, "ack-wait", 3*time.Second, "consumer AckWait (worker run's default is 3s)")
	fs.StringVar(&o.logLevel, "log-level", "info", "worker log level (worker run's default); logs are kept in -log-dir")
	fs.StringVar(&o.tls, "tls", "h2", `the simulated API's transport: "h2" (HTTPS, ALPN offers HTTP/2), "h1" (HTTPS, HTTP/1.1 only) or "off" (plain HTTP)`)
	naiveList := fs.String("naive", "", `also run the naive peer (nats.go pull + a goroutine per message + cenkalti/backoff + the SDK's defaults) in these scenarios ("all": every one it can)`)
	only := fs.String("peer", "", `run only this peer: "pool", "naive" or a -variant's name`)
	workerBin := fs.String("worker-bin", "", "the `worker` binary the pool runs (default: go build ./cmd/worker of the root module into a temporary directory)")
	fs.Var(&variants, "variant", "also run `NAME=BINARY [ENV=VALUE …]` as a worker in every scenario, interleaved with the pool (repeatable; e.g. 'gogc100=../bin/worker GOGC=100')")
	workerArgs := fs.String("worker-args", "", `extra flags for every worker run, space separated (e.g. "--rate-burst 1")`)
	fs.StringVar(&o.logDir, "log-dir", "", "keep worker and simulator logs here (default: discarded with the run's temporary directory)")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of tables")
	repeat := fs.Int("repeat", 1, "run every scenario this many times (peers interleaved) and print the medians: CPU varies by 10-15% from run to run on a shared machine")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
		return code
	}
	self, err := os.Executable()
	if err != nil {
		return fail(1, "%v", err)
	}
	o.self = self
	o.workerArgs = strings.Fields(*workerArgs)
	if *repeat < 1 {
		return fail(2, "-repeat %d: want 1 or more", *repeat)
	}
	if !slices.Contains([]string{"h2", "h1", "off"}, o.tls) {
		return fail(2, "-tls %q: want h2, h1 or off", o.tls)
	}
	var run []scenario
	for name := range strings.SplitSeq(*list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		i := slices.IndexFunc(scenarios(), func(s scenario) bool { return s.name == name })
		if i < 0 {
			return fail(2, "unknown scenario %q (have %s)", name, strings.Join(names, ", "))
		}
		run = append(run, scenarios()[i])
	}
	var naiveIn []string
	for s := range strings.SplitSeq(*naiveList, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "all":
			naiveIn = append(naiveIn, names...)
		default:
			naiveIn = append(naiveIn, s)
		}
	}
	if *workerBin == "" {
		bin, cleanup, err := buildWorker()
		if err != nil {
			return fail(1, "%v", err)
		}
		defer cleanup()
		*workerBin = bin
	}
	pool := peer{name: "pool", bin: *workerBin}
	peersFor := func(sc scenario) []peer {
		ps := []peer{pool}
		if sc.naive && slices.Contains(naiveIn, sc.name) {
			ps = append(ps, peer{name: "naive", naive: true})
		}
		ps = append(ps, variants...)
		if *only != "" {
			ps = slices.DeleteFunc(ps, func(p peer) bool { return p.name != *only })
		}
		return ps
	}
	for _, p := range append([]peer{pool}, variants...) {
		if _, err := os.Stat(p.bin); err != nil {
			return fail(2, "peer %s: %v", p.name, err)
		}
	}

	rep := report{Machine: machineInfo(), TLS: o.tls, Concurrency: o.concurrency, AckWait: o.ackWait.String(), LogLevel: o.logLevel}
	failed := false
	for _, sc := range run {
		if *n > 0 {
			sc.n = *n
		}
		sc.n = max(1, int(math.Round(float64(sc.n)**scale)))
		runs := *repeat
		if sc.once {
			runs = 1
		}
		for r := 1; r <= runs; r++ {
			for _, p := range peersFor(sc) {
				fmt.Fprintf(os.Stderr, "bench: %s (%s) N=%d run %d/%d: %s\n", sc.name, p.name, sc.n, r, runs, sc.desc)
				res, err := runScenario(o, sc, p, r)
				res.Run = r
				res.check(o.concurrency)
				if err != nil {
					res.Error = err.Error()
					failed = true
				}
				if res.Lost != 0 {
					failed = true
				}
				fmt.Fprintf(os.Stderr, "bench: %s\n", res.line())
				rep.Results = append(rep.Results, res)
			}
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return 1
		}
	} else {
		rep.print(os.Stdout)
	}
	if failed {
		return 1
	}
	return 0
}

// buildWorker builds ./cmd/worker of the root module (this module's
// replace target) into a temporary directory.
func buildWorker() (string, func(), error) {
	root, err := exec.CommandContext(context.Background(), "go", "list", "-m", "-f", "{{.Dir}}",
		"github.com/codearts-recover-worker/codearts-recover-worker").Output()
	if err != nil {
		return "", nil, fmt.Errorf("find the root module (run from the bench directory, or pass -worker-bin): %w", err)
	}
	dir, err := os.MkdirTemp("", "recover-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	bin := filepath.Join(dir, "worker")
	cmd := exec.CommandContext(context.Background(), "go", "build", "-trimpath", "-o", bin, "./cmd/worker") //nolint:gosec // bin is our temporary path
	cmd.Dir = strings.TrimSpace(string(root))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		cleanup()
		return "", nil, errors.Join(errors.New("go build ./cmd/worker (or pass -worker-bin)"), err)
	}
	return bin, cleanup, nil
}
