package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// result is one scenario run; its JSON is stable for scripts.
type result struct {
	Scenario string `json:"scenario"`
	Peer     string `json:"peer"`
	// Run numbers the repeats of a scenario (-repeat), from 1.
	Run int `json:"run"`
	N   int `json:"n"`
	// Fleet is the number of workers, with its changes (e.g. "1→3→1").
	Fleet string `json:"fleet"`
	// Processes counts the worker processes started (restarts included).
	Processes int     `json:"processes"`
	WallS     float64 `json:"wall_s"`
	IdealS    float64 `json:"ideal_s"`
	// Ratio is ideal/actual; 0 when there is no ideal (zero latency).
	Ratio      float64 `json:"ideal_over_actual"`
	Throughput float64 `json:"throughput_per_s"`
	// WorkerCPUus is the worker processes' CPU (user + system) over the
	// drain, all of them together, divided by N.
	WorkerCPUus float64 `json:"worker_cpu_us_per_req"`
	// SimCPUus is the simulator process's CPU per request, for reference.
	SimCPUus float64 `json:"sim_cpu_us_per_req"`
	// NATSMsgsPerReq is the messages nats-server received from the workers
	// per request (pulls, acks, publishes, heartbeats, KV operations).
	NATSMsgsPerReq float64 `json:"nats_msgs_in_per_req"`
	// PeakRSSMiB is the highest peak RSS of one worker process.
	PeakRSSMiB float64          `json:"peak_rss_mib"`
	Calls      map[string]int64 `json:"api_calls_by_status"`
	CallsTotal int64            `json:"api_calls"`
	Share429   float64          `json:"share_429"`
	Recovered  int              `json:"recovered"`
	// DeadLettered counts requests by dead-letter reason.
	DeadLettered map[string]int `json:"dead_lettered"`
	// Unexpected counts dead letters other than client_error for the jobs
	// the simulator answers 403 or 404: the target is 0.
	Unexpected int `json:"unexpected_dead_letters"`
	// Lost counts enqueued ids in neither the result stream nor the DLQ.
	Lost int `json:"lost"`
	// Both counts ids with a recovered result and a dead letter.
	Both int `json:"recovered_and_dead_lettered,omitempty"`
	// RepeatedRecovers counts recovers the API applied more than once for a
	// job (at least once delivery after a crash).
	RepeatedRecovers int64 `json:"repeated_recovers"`
	// Timeline is the requests finished in each second of the drain.
	Timeline []uint64 `json:"results_per_second"`
	LogBytes int64    `json:"worker_log_bytes"`
	// Missed lists the targets of SPEC.md the run did not meet.
	Missed []string `json:"missed_targets,omitempty"`
	Notes  string   `json:"notes,omitempty"`
	Error  string   `json:"error,omitempty"`

	want target
}

type report struct {
	Machine     machine  `json:"machine"`
	TLS         string   `json:"tls"`
	Concurrency int      `json:"concurrency"`
	AckWait     string   `json:"ack_wait"`
	LogLevel    string   `json:"log_level"`
	Results     []result `json:"results"`
}

type machine struct {
	Date   string `json:"date"`
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	OS     string `json:"os"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func machineInfo() machine {
	m := machine{
		Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var sb strings.Builder
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			sb.WriteByte(byte(c)) //nolint:gosec // ASCII bytes held as int8 on some platforms
		}
		m.Kernel = sb.String()
	}
	return m
}

// check lists the targets r misses: the scenario's own, and for every
// scenario nothing lost, no unexpected dead letter, no request both
// recovered and dead-lettered, and a worker under 64 MiB at concurrency 64.
func (r *result) check(concurrency int) {
	r.Missed = nil
	miss := func(format string, a ...any) { r.Missed = append(r.Missed, fmt.Sprintf(format, a...)) }
	if r.want.minRatio > 0 && r.Ratio < r.want.minRatio {
		miss("ideal/actual ≥ %.2f", r.want.minRatio)
	}
	if r.want.max429 > 0 && r.Share429 >= r.want.max429 {
		miss("429 < %.0f%%", r.want.max429*100)
	}
	if r.Lost != 0 {
		miss("nothing lost")
	}
	if r.Unexpected > 0 {
		miss("no unexpected dead letter")
	}
	if r.Both > 0 {
		miss("never recovered and dead-lettered")
	}
	if concurrency <= 64 && r.PeakRSSMiB >= 64 {
		miss("RSS < 64 MiB")
	}
}

func (r result) name() string {
	n := r.Scenario
	if r.Peer != "pool" {
		n += " (" + r.Peer + ")"
	}
	return n
}

func (r result) calls() string {
	codes := make([]string, 0, len(r.Calls))
	for c := range r.Calls {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s:%d", c, r.Calls[c]))
	}
	return strings.Join(parts, " ")
}

func (r result) deadLetters() string {
	total := 0
	reasons := make([]string, 0, len(r.DeadLettered))
	for k, n := range r.DeadLettered {
		total += n
		reasons = append(reasons, fmt.Sprintf("%s:%d", k, n))
	}
	slices.Sort(reasons)
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(reasons, " "))
}

func orDash(ok bool, format string, v float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func (r result) lost() string {
	if r.Lost < 0 {
		return "?"
	}
	return strconv.Itoa(r.Lost)
}

func (r result) targets() string {
	if r.Error != "" {
		return "error"
	}
	if len(r.Missed) == 0 {
		return "met"
	}
	return "missed: " + strings.Join(r.Missed, ", ")
}

// line is a one-line summary for progress output.
func (r result) line() string {
	return fmt.Sprintf("%s #%d: wall %.2fs (ideal %s, %s), worker %.0f µs/req, rss %.0f MiB, calls %s, 429 %.1f%%, dead letters %s (unexpected %d), lost %s",
		r.name(), r.Run, r.WallS, orDash(r.IdealS > 0, "%.2f", r.IdealS), orDash(r.IdealS > 0, "%.2f", r.Ratio),
		r.WorkerCPUus, r.PeakRSSMiB, r.calls(), r.Share429*100, r.deadLetters(), r.Unexpected, r.lost())
}

func (rep report) print(w io.Writer) {
	m := rep.Machine
	api := "HTTPS (" + rep.TLS + ")"
	if rep.TLS == "off" {
		api = "plain HTTP"
	}
	fmt.Fprintf(w, "%s · %s × %d · %s %s · %s · API over %s · concurrency %d per worker · ack-wait %s · log-level %s\n\n",
		m.Date, m.CPU, m.CPUs, m.OS, m.Kernel, m.Go, api, rep.Concurrency, rep.AckWait, rep.LogLevel)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\trun\tworkers\tN\twall s\tideal s\tideal/actual\tworker CPU µs/req\tpeak RSS MiB\t429 share\tdead letters\tunexpected\tlost\tAPI calls by status\ttargets")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.2f\t%s\t%s\t%.0f\t%.0f\t%.1f%%\t%s\t%d\t%s\t%s\t%s\n",
			r.name(), r.Run, r.Fleet, r.N, r.WallS, orDash(r.IdealS > 0, "%.2f", r.IdealS), orDash(r.IdealS > 0, "%.2f", r.Ratio),
			r.WorkerCPUus, r.PeakRSSMiB, r.Share429*100, r.deadLetters(), r.Unexpected, r.lost(), r.calls(), r.targets())
	}
	_ = tw.Flush()
	rep.printMedians(w)
	for _, r := range rep.Results {
		if r.Error != "" {
			fmt.Fprintf(w, "\n%s #%d: error: %s", r.name(), r.Run, r.Error)
		}
	}
	fmt.Fprintln(w)
}

// printMedians summarises repeated runs: per scenario and peer the median of
// each figure (worst case for dead letters and losses), and for every other
// peer the median of its CPU over the pool's, each run against the pool's
// run of the same number (so that both saw the same machine).
func (rep report) printMedians(w io.Writer) {
	type key struct{ scenario, peer string }
	var order []key
	byKey := map[key][]result{}
	repeated := false
	for _, r := range rep.Results {
		if r.Error != "" {
			continue
		}
		k := key{r.Scenario, r.Peer}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], r)
		repeated = repeated || len(byKey[k]) > 1
	}
	if !repeated {
		return
	}
	of := func(rs []result, f func(result) float64) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return v
	}
	fmt.Fprintln(w, "\nmedians (worst run for dead letters and losses; spread of the runs in brackets):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\truns\tworkers\tN\twall s\tideal s\tideal/actual\tworker CPU µs/req\tvs pool\tpeak RSS MiB\t429 share\tunexpected dead letters\tlost")
	for _, k := range order {
		rs := byKey[k]
		cpu := of(rs, func(r result) float64 { return r.WorkerCPUus })
		ratios := of(rs, func(r result) float64 { return r.Ratio })
		unexpected, lost := 0, 0
		for _, r := range rs {
			unexpected, lost = max(unexpected, r.Unexpected), max(lost, r.Lost)
		}
		vsPool := "-"
		if k.peer != "pool" {
			poolRun := map[int]result{}
			for _, r := range byKey[key{k.scenario, "pool"}] {
				poolRun[r.Run] = r
			}
			var rel []float64
			for _, r := range rs {
				if p, ok := poolRun[r.Run]; ok && p.WorkerCPUus > 0 {
					rel = append(rel, r.WorkerCPUus/p.WorkerCPUus)
				}
			}
			if len(rel) > 0 {
				vsPool = fmt.Sprintf("%.3f (%s)", median(rel), spread(rel, "%.3f"))
			}
		}
		first := rs[0]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.2f\t%s\t%s\t%.0f (%s)\t%s\t%.0f\t%.1f%%\t%d\t%d\n",
			first.name(), len(rs), first.Fleet, first.N, median(of(rs, func(r result) float64 { return r.WallS })),
			orDash(first.IdealS > 0, "%.2f", first.IdealS),
			orDash(first.IdealS > 0, "%.2f", median(ratios))+bracket(first.IdealS > 0, ratios, "%.2f"),
			median(cpu), spread(cpu, "%.0f"), vsPool,
			median(of(rs, func(r result) float64 { return r.PeakRSSMiB })),
			100*median(of(rs, func(r result) float64 { return r.Share429 })), unexpected, lost)
	}
	_ = tw.Flush()
}

func bracket(ok bool, v []float64, format string) string {
	if !ok {
		return ""
	}
	return " (" + spread(v, format) + ")"
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func spread(v []float64, format string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}
