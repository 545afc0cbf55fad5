package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
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
	Run    int     `json:"run"`
	N      int     `json:"n"`
	WallS  float64 `json:"wall_s"`
	IdealS float64 `json:"ideal_s"`
	// Ratio is ideal/actual; 0 when there is no ideal (zero latency).
	Ratio      float64 `json:"ideal_over_actual"`
	Throughput float64 `json:"throughput_per_s"`
	// WorkerCPUus is the worker process's CPU (user + system) from the
	// start of the drain to its end, divided by N; with a SIGKILL, both
	// processes' together.
	WorkerCPUus float64 `json:"worker_cpu_us_per_req"`
	// SimCPUus is the simulator process's CPU per request, for reference.
	SimCPUus float64 `json:"sim_cpu_us_per_req"`
	// NATSMsgsPerReq is the messages nats-server received from the worker
	// per request (pulls, acks, publishes, heartbeats, KV operations).
	NATSMsgsPerReq float64          `json:"nats_msgs_in_per_req"`
	PeakRSSMiB     float64          `json:"peak_rss_mib"`
	Calls          map[string]int64 `json:"api_calls_by_status"`
	CallsTotal     int64            `json:"api_calls"`
	Share429       float64          `json:"share_429"`
	Recovered      int              `json:"recovered"`
	// DeadLettered counts requests by dead-letter reason.
	DeadLettered map[string]int `json:"dead_lettered"`
	// Lost counts enqueued ids in neither the result stream nor the DLQ.
	Lost int `json:"lost"`
	// Both counts ids with a recovered result and a dead letter.
	Both int `json:"recovered_and_dead_lettered,omitempty"`
	// RepeatedRecovers counts recovers the API applied more than once for a
	// job (at least once delivery after a crash).
	RepeatedRecovers int64 `json:"repeated_recovers"`
	Restarts         int   `json:"restarts,omitempty"`
	// Timings are the worker's API call and delivery durations (the last
	// worker process's, when there were several).
	Timings *workerTimings `json:"worker_timings,omitempty"`
	// SlotBusy is the share of concurrency × wall spent in deliveries, and
	// SlotInAPI the share spent in API calls (no restart only).
	SlotBusy  float64 `json:"slot_busy,omitempty"`
	SlotInAPI float64 `json:"slot_in_api,omitempty"`
	// Timeline is the requests finished in each second of the drain.
	Timeline []uint64 `json:"results_per_second"`
	LogBytes int64    `json:"worker_log_bytes"`
	Notes    string   `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`
}

type report struct {
	Machine     machine  `json:"machine"`
	Worker      string   `json:"worker"`
	TLS         string   `json:"tls,omitempty"`
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
		m.Kernel = utsString(u.Release[:])
	}
	return m
}

func utsString[T int8 | uint8](b []T) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

func (r result) name() string {
	n := r.Scenario
	if r.Peer != "pool" {
		n += " (" + r.Peer + ")"
	}
	if r.Run > 1 {
		n += " #" + strconv.Itoa(r.Run)
	}
	return n
}

func (r result) calls() string {
	codes := make([]string, 0, len(r.Calls))
	for c := range r.Calls {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s:%d", c, r.Calls[c]))
	}
	return strings.Join(parts, " ")
}

func (r result) ratio() string {
	if r.IdealS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.Ratio)
}

func (r result) ideal() string {
	if r.IdealS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.IdealS)
}

func (r result) lost() string {
	if r.Lost < 0 {
		return "?"
	}
	return strconv.Itoa(r.Lost)
}

// line is a one-line summary for progress output.
func (r result) line() string {
	return fmt.Sprintf("%s: wall %.2fs (ideal %s, %s), %.0f req/s, worker %.0f µs/req, rss %.0f MiB, calls %s, 429 %.1f%%, lost %s",
		r.name(), r.WallS, r.ideal(), r.ratio(), r.Throughput, r.WorkerCPUus, r.PeakRSSMiB, r.calls(), r.Share429*100, r.lost())
}

func (rep report) print(w io.Writer) {
	m := rep.Machine
	api := "http"
	if rep.TLS != "" {
		api = "https (" + rep.TLS + ")"
	}
	fmt.Fprintf(w, "%s · %s × %d · %s %s · %s · worker %s · API over %s · concurrency %d · ack-wait %s · log-level %s\n\n",
		m.Date, m.CPU, m.CPUs, m.OS, m.Kernel, m.Go, rep.Worker, api, rep.Concurrency, rep.AckWait, rep.LogLevel)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tN\twall s\tideal s\tideal/actual\treq/s\tworker CPU µs/req\tpeak RSS MiB\tAPI calls by status\t429 share\tlost\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%.1f%%\t%s\t\n",
			r.name(), r.N, r.WallS, r.ideal(), r.ratio(), r.Throughput, r.WorkerCPUus, r.PeakRSSMiB, r.calls(), r.Share429*100, r.lost())
	}
	_ = tw.Flush()
	rep.printMedians(w)
	for _, r := range rep.Results {
		if r.Error != "" {
			fmt.Fprintf(w, "\n%s: error: %s", r.name(), r.Error)
		}
	}
	fmt.Fprintln(w)
}

// printMedians summarises repeated runs: per scenario and peer the median
// ideal/actual and CPU, and where the naive peer ran too, the median of the
// pool/naive CPU ratios of the runs (each pool run against the naive run of
// the same number, so that both saw the same machine).
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
	fmt.Fprintln(w, "\nmedians:")
	for _, k := range order {
		rs := byKey[k]
		name := result{Scenario: k.scenario, Peer: k.peer}.name()
		cpu := of(rs, func(r result) float64 { return r.WorkerCPUus })
		line := fmt.Sprintf("  %s: %d runs, worker CPU %.0f µs/req (%s)", name, len(rs), median(cpu), spread(cpu, "%.0f"))
		if rs[0].IdealS > 0 {
			ratios := of(rs, func(r result) float64 { return r.Ratio })
			line += fmt.Sprintf(", ideal/actual %.2f (%s)", median(ratios), spread(ratios, "%.2f"))
		}
		if k.peer == "pool" && rs[0].CallsTotal > 0 {
			line += fmt.Sprintf(", 429 share %.1f%%", 100*median(of(rs, func(r result) float64 { return r.Share429 })))
		}
		fmt.Fprintln(w, line)
		if k.peer != "pool" {
			continue
		}
		naiveRun := map[int]result{}
		for _, r := range byKey[key{k.scenario, "naive"}] {
			naiveRun[r.Run] = r
		}
		var ratios []float64
		for _, r := range rs {
			if n, ok := naiveRun[r.Run]; ok && n.WorkerCPUus > 0 {
				ratios = append(ratios, r.WorkerCPUus/n.WorkerCPUus)
			}
		}
		if len(ratios) > 0 {
			fmt.Fprintf(w, "  %s: worker CPU pool/naive %.2f (%s)\n", k.scenario, median(ratios), spread(ratios, "%.2f"))
		}
	}
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
