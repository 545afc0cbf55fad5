package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressReporter shows the progress of a bulk operation (enqueue,
// replay, the demo's drain) on stderr: a bar with rate and ETA on a
// terminal, a line every interval otherwise, nothing when quiet. A total
// below 0 is unknown (a streamed input): the count and the rate, no ETA.
// It is safe for concurrent use: the publisher's goroutine updates it while
// the reader prints.
type progressReporter struct {
	mu          sync.Mutex
	w           io.Writer
	what        string
	bar         *progressbar.ProgressBar
	total       int
	every       time.Duration
	start, last time.Time
}

func newProgressReporter(w io.Writer, what string, total int, quiet bool, every time.Duration) *progressReporter {
	r := &progressReporter{what: what, total: total, every: every, start: time.Now()}
	r.last = r.start
	if quiet {
		return r
	}
	r.w = w
	if isTerminal(w) {
		r.bar = progressbar.NewOptions(max(total, -1),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("req"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	return r
}

// update reports done items.
func (r *progressReporter) update(done int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.w == nil:
	case r.bar != nil:
		_ = r.bar.Set(done)
	default:
		now := time.Now()
		if now.Sub(r.last) < r.every {
			return
		}
		r.last = now
		perSec := float64(done) / max(now.Sub(r.start).Seconds(), 1e-9)
		if r.total < 0 {
			fmt.Fprintf(r.w, "%s: %d, %.0f/s\n", r.what, done, perSec)
			return
		}
		eta := "?"
		if perSec > 0 {
			eta = (time.Duration(float64(r.total-done)/perSec) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(r.w, "%s: %d/%d (%.0f%%), %.0f/s, eta %s\n", r.what, done, r.total, 100*float64(done)/float64(max(r.total, 1)), perSec, eta)
	}
}

// println writes a line of its own to w (quiet or not), clearing the bar
// first so the two do not share a line.
func (r *progressReporter) println(w io.Writer, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintln(w, line)
}

func (r *progressReporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Finish()
		_ = r.bar.Exit()
	}
}
