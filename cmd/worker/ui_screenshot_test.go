package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestStatusPageScreenshot writes a PNG of the status page during a
// `worker demo` drain to $STATUS_PAGE_SCREENSHOT (make screenshot writes
// docs/status-page.png); skipped without it.
func TestStatusPageScreenshot(t *testing.T) {
	out := os.Getenv("STATUS_PAGE_SCREENSHOT")
	if out == "" {
		t.Skip("set STATUS_PAGE_SCREENSHOT=path.png ('make screenshot')")
	}
	bctx := browser(t)

	pr, pw := io.Pipe()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "status page: "); ok {
				urls <- u
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		root := newRoot(strings.NewReader(""), io.Discard, pw)
		root.SetArgs([]string{"demo", "--requests", "3000", "--rate-limit", "150", "--http-addr", "127.0.0.1:0", "--ui-addr", "127.0.0.1:0", "--ui-actions", "--seed", "7"})
		_ = root.ExecuteContext(ctx) // stopped mid-drain on purpose
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = pw.Close()
	})
	var url string
	select {
	case url = <-urls:
	case <-time.After(60 * time.Second):
		t.Fatal("the demo printed no status page URL")
	}
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(1440, 1000), chromedp.Navigate(url)))
	// Mid-drain: about half done, with dead letters and a backlog curve.
	waitPage(t, bctx, 90*time.Second,
		`+document.getElementById('k-backlog').textContent.replaceAll(',', '') < 1600 && document.querySelectorAll('#groups tr[data-group]').length >= 3`,
		"the drain to be half way")
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(out, png, 0o644))
	t.Logf("wrote %s (%d bytes)", out, len(png))
}
