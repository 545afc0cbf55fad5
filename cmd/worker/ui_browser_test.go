package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/codearts-recover-worker/codearts-recover-worker/codearts/codeartssim"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/ui"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
)

// The status page in a real headless Chromium, against `worker run`'s own
// wiring (real NATS, the real SDK, the simulator).
//
// Without Chromium these tests skip, unless CODEARTS_BROWSER_TEST=require
// (CI sets it), which makes a missing browser a failure.

// browser starts a headless Chromium for the test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser, NATS and the simulator")
	}
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("CODEARTS_BROWSER_TEST") == "require" {
			t.Fatal("CODEARTS_BROWSER_TEST=require but no Chromium found: run 'make chromium' (Debian's chromium package) or set CHROMIUM")
		}
		t.Skip("no Chromium on this machine: 'make chromium' installs Debian's package (CI sets CODEARTS_BROWSER_TEST=require so this never skips there)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1440, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancel()
		cancelAlloc()
	})
	require.NoError(t, chromedp.Do(ctx), "starting %s", path)
	return ctx
}

// waitPage waits until the JavaScript expression is truthy in the page.
func waitPage(t *testing.T, ctx context.Context, timeout time.Duration, expr string, msg string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err, "waiting for %s (%s)", msg, expr)
}

func pageEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// pageFigures reads every figure of `worker status` the page shows, by its
// JSON path, as the user sees it (thousands separators removed).
func pageFigures(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	got := pageEval[map[string]string](t, ctx,
		`Object.fromEntries([...document.querySelectorAll('[data-k]')].map(e => [e.dataset.k, e.textContent.replaceAll(',', '')]))`)
	return got
}

// statusFigures runs `worker status --json` and flattens it the same way.
func statusFigures(t *testing.T, natsURL string) map[string]string {
	t.Helper()
	r := cli(t, "", "status", "--json", "--nats-url", natsURL)
	require.Zero(t, r.code, r.err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.out), &doc), r.out)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		case []any: // the stream's subjects, shown in the header
		case nil:
		default:
			out[prefix] = fmt.Sprint(x)
		}
	}
	walk("", doc)
	return out
}

// volatile figures change while nothing happens: idle workers' pull
// requests come and go.
var volatileFigures = []string{"consumer.waiting_pulls"}

// waitFiguresMatch waits until the page shows exactly the figures of
// `worker status --json`, once they have settled on want.
func waitFiguresMatch(t *testing.T, ctx context.Context, natsURL string, want map[string]string) map[string]string {
	t.Helper()
	conds := []string{}
	for k, v := range want {
		conds = append(conds, fmt.Sprintf(`(document.querySelector('[data-k=%q]')?.textContent.replaceAll(',', '') === %q)`, k, v))
	}
	waitPage(t, ctx, 60*time.Second, strings.Join(conds, " && "), fmt.Sprintf("the page to show %v", want))
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, cli := pageFigures(t, ctx), statusFigures(t, natsURL)
		for _, k := range volatileFigures {
			delete(page, k)
			delete(cli, k)
		}
		if fmt.Sprint(page) == fmt.Sprint(cli) || time.Now().After(deadline) {
			require.Equal(t, cli, page, "the page's figures are `worker status --json`'s")
			return page
		}
		// Not equal yet: wait for the page's next refresh, then compare again.
		stamp := pageEval[string](t, ctx, `document.getElementById('updated').textContent`)
		waitPage(t, ctx, 10*time.Second, fmt.Sprintf(`document.getElementById('updated').textContent !== %q`, stamp), "the next refresh")
	}
}

// startUIWorker runs `worker run` as its command does (open, Run) with the
// given extra flags, against a fresh NATS and sim; it returns the page's
// base URL and the NATS URL (with credentials).
func startUIWorker(t *testing.T, sim *codeartssim.Server, args ...string) (base, natsURL string) {
	t.Helper()
	ns := startNATS(t)
	t.Setenv("HUAWEICLOUD_SDK_AK", testAK)
	t.Setenv("HUAWEICLOUD_SDK_SK", testSK)
	t.Setenv("HUAWEICLOUD_SDK_PROJECT_ID", testProjectID)
	natsURL = strings.Replace(ns.ClientURL(), "nats://", "nats://"+natsUser+":"+natsPassword+"@", 1)
	o := parseRun(t, append([]string{"--nats-url", natsURL, "--endpoint", sim.URL(), "--http-addr", "127.0.0.1:0", "--ui-addr", "127.0.0.1:0",
		"--ack-wait", "5s", "--drain-timeout", "5s", "--concurrency", "8", "--log-level", "warn"}, args...)...)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	s, err := o.open(ctx, &logs)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		s.Close()
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs.String())
		}
	})
	return "http://" + s.uiLn.Addr(), natsURL
}

// uiTokenFile writes a replay token to a file for --ui-token-file.
func uiTokenFile(t *testing.T) (path, token string) {
	t.Helper()
	token = "test-ui-token-0123456789abcdef"
	path = filepath.Join(t.TempDir(), "ui-token")
	require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
	return path, token
}

// postAsPage POSTs a replay to base exactly as the page does (JSON, the
// action header, a same-origin Origin), with authorization unless "".
func postAsPage(t *testing.T, base, body, authorization string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/api/replay", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ui.ActionHeader, "replay")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := noKeepAlive().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = seqJobID(prefix, i)
	}
	return out
}

// TestStatusPageLiveAndReplay: the page loads against a running worker,
// shows what `worker status --json` shows once the requests are drained,
// and its replay action moves the chosen group of dead letters back to the
// request stream (they are recovered this time) while the page follows.
func TestStatusPageLiveAndReplay(t *testing.T) {
	bctx := browser(t)
	verifyNoLeaks(t)
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK), codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	tokenFile, token := uiTokenFile(t)
	base, natsURL := startUIWorker(t, sim, "--ui-actions", "--ui-token-file", tokenFile)

	good, notFound, badParam := ids("a", 30), ids("404", 6), ids("400", 4)
	ctx := context.Background()
	publish(t, ctx, natsURL, good...)
	publish(t, ctx, natsURL, notFound...)
	publish(t, ctx, natsURL, badParam...)
	pub, err := queue.Connect(ctx, queue.Config{URL: natsURL})
	require.NoError(t, err)
	for i := range 2 {
		_, err := pub.Publish(ctx, queue.DefaultSubject, fmt.Sprintf("poison-%d", i), nil, []byte(`{"job_id":"../etc/passwd"}`))
		require.NoError(t, err)
	}
	require.NoError(t, pub.Close(time.Second))

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/")))
	waitPage(t, bctx, 30*time.Second, `document.body.dataset.loaded === "true"`, "the first poll")
	require.Equal(t, "actions enabled", pageEval[string](t, bctx, `document.getElementById('mode').textContent`))

	// Drained: 42 requests, 30 recovered, 12 dead-lettered (6 404, 4 400,
	// 2 invalid); the page's figures are the CLI's.
	waitFiguresMatch(t, bctx, natsURL, map[string]string{
		"stream.messages": "0", "dlq.messages": "12", "dlq.by_reason.client_error": "10", "dlq.by_reason.invalid_request": "2",
		"results.messages": "42", "consumer.in_flight": "0",
	})
	waitPage(t, bctx, 10*time.Second, `document.getElementById('k-recovered').textContent === "30" && document.getElementById('k-dead').textContent === "12"`,
		"this worker's counts")
	calls := pageEval[map[string]string](t, bctx, `Object.fromEntries([...document.querySelectorAll('#calls [data-bar]')].map(e => [e.dataset.bar, e.querySelector('.n').textContent]))`)
	require.Equal(t, map[string]string{"200": "30", "404": "6", "400": "4"}, calls, "API calls by status")
	require.Equal(t, "0", pageEval[string](t, bctx, `document.getElementById('k-backlog').textContent`))
	require.Equal(t, "drained", pageEval[string](t, bctx, `document.getElementById('k-eta').textContent.split(' · ')[0]`))
	groups := pageEval[map[string]string](t, bctx, `Object.fromEntries([...document.querySelectorAll('#groups tr[data-group]')].map(e => [e.dataset.group, e.dataset.count]))`)
	require.Equal(t, map[string]string{"client_error/CB.00060214": "6", "client_error/CB.00060200": "4", "invalid_request/": "2"}, groups)

	// Without the token: no replay control, the page asks for it; asked
	// exactly as the page asks (header, same origin), the API refuses.
	require.Zero(t, pageEval[int](t, bctx, `document.querySelectorAll('[data-action]').length`), "no replay control before the token")
	require.False(t, pageEval[bool](t, bctx, `document.getElementById('token-form').hidden`), "the page asks for the token")
	group := `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":12}`
	require.Equal(t, http.StatusUnauthorized, postAsPage(t, base, group, ""))
	require.Equal(t, http.StatusUnauthorized, postAsPage(t, base, group, "Bearer not-"+token))
	// A filter that is not one group the page shows is refused, token or not.
	require.Equal(t, http.StatusBadRequest, postAsPage(t, base, `{"filter":{"since":"100000d"}}`, "Bearer "+token))
	require.Equal(t, http.StatusConflict, postAsPage(t, base, `{"reason":"client_error","error_code":"","up_to_seq":12}`, "Bearer "+token))

	// With the token typed in, the buttons appear.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#token-save`)),
	))
	waitPage(t, bctx, 10*time.Second, `document.querySelectorAll('button[data-action="replay"]').length === 3 && document.getElementById('token-form').hidden`,
		"the replay controls")
	require.Empty(t, pageEval[string](t, bctx, `document.getElementById('token').value`), "the field does not keep the token")

	// The jobs exist now: replay the 404 group from the page.
	sim.Configure(codeartssim.WithoutOutcomes())
	row := `#groups tr[data-group="client_error/CB.00060214"] `
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(row+`button[data-action="replay"]`)),
		chromedp.Click(chromedp.CSS(row+`button[data-action="confirm-replay"]`)),
	))
	waitPage(t, bctx, 30*time.Second, `document.getElementById('replay').dataset.running === "false" && document.getElementById('replay').dataset.replayed === "6"`,
		"the replay to finish")
	waitPage(t, bctx, 30*time.Second, `!document.querySelector('#groups tr[data-group="client_error/CB.00060214"]') && document.getElementById('k-recovered').textContent === "36"`,
		"the page to drop the group and count the recoveries")
	for _, id := range notFound {
		require.Equal(t, 1, sim.Recovered(id), "job %s recovered once after the replay", id)
	}
	for _, id := range badParam {
		require.Zero(t, sim.Recovered(id), "job %s was not chosen", id)
	}
	r := cli(t, "", "dlq", "list", "--json", "--nats-url", natsURL)
	require.Zero(t, r.code, r.err)
	require.NotContains(t, r.out, "CB.00060214", "the replayed dead letters left the DLQ")
	require.Equal(t, 6, strings.Count(r.out, "\n"), "the others stayed")
	waitFiguresMatch(t, bctx, natsURL, map[string]string{
		"stream.messages": "0", "dlq.messages": "6", "dlq.by_reason.client_error": "4", "results.messages": "48",
	})
}

// TestStatusPageReadOnly: with --ui-actions but no --ui-token-file the page
// is read-only: no replay control, and the API refuses a replay even when
// asked exactly as the page would (action header, same-origin Origin).
func TestStatusPageReadOnly(t *testing.T) {
	bctx := browser(t)
	verifyNoLeaks(t)
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK), codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	base, natsURL := startUIWorker(t, sim, "--ui-actions")
	publish(t, context.Background(), natsURL, ids("404", 3)...)

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/")))
	waitPage(t, bctx, 30*time.Second, `document.querySelector('#groups tr[data-group="client_error/CB.00060214"]')?.dataset.count === "3"`, "the dead letters")
	require.Equal(t, "read-only", pageEval[string](t, bctx, `document.getElementById('mode').textContent`))
	require.Zero(t, pageEval[int](t, bctx, `document.querySelectorAll('[data-action]').length`), "no replay control")
	require.True(t, pageEval[bool](t, bctx, `document.getElementById('token-form').hidden`), "no token to ask for")

	group := `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":3}`
	require.Equal(t, http.StatusForbidden, postAsPage(t, base, group, ""))
	require.Equal(t, http.StatusForbidden, postAsPage(t, base, group, "Bearer anything-at-all-0123456789"))
	r := cli(t, "", "status", "--json", "--nats-url", natsURL)
	require.Zero(t, r.code, r.err)
	require.Contains(t, r.out, `"client_error": 3`, "nothing replayed")
}

// TestDemoPageURLCarriesToken: `worker demo --ui-actions` prints the page's
// URL with a token made for the run in its fragment; opened as printed, the
// page keeps the token for the tab, drops it from the address bar, and
// offers the replay.
func TestDemoPageURLCarriesToken(t *testing.T) {
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
		root.SetArgs([]string{"demo", "--requests", "40", "--latency", "1ms", "--not-found", "0.5", "--seed", "3",
			"--http-addr", "", "--ui-addr", "127.0.0.1:0", "--ui-actions", "--hold"})
		_ = root.ExecuteContext(ctx)
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
	base, token, ok := strings.Cut(url, "/#token=")
	require.True(t, ok, "the URL carries the token: %s", url)
	require.GreaterOrEqual(t, len(token), 16)
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), url)

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(url)))
	waitPage(t, bctx, 60*time.Second, `document.querySelectorAll('button[data-action="replay"]').length > 0`, "the replay controls")
	require.Empty(t, pageEval[string](t, bctx, `location.hash`), "the token leaves the address bar")
	require.Equal(t, token, pageEval[string](t, bctx, `sessionStorage.getItem("codearts-recover-ui-token")`))
	require.Equal(t, http.StatusUnauthorized, postAsPage(t, base, `{"reason":"client_error","error_code":"CB.00060214","up_to_seq":1}`, ""))
}

// TestStatusPageShowsCampaigns: a campaign enqueued with --campaign shows
// on the page with its outcomes as `worker report` counts them, and its
// report link downloads the CSV of every job, read-only.
func TestStatusPageShowsCampaigns(t *testing.T) {
	bctx := browser(t)
	verifyNoLeaks(t)
	sim := codeartssim.New(codeartssim.WithCredentials(testAK, testSK), codeartssim.WithOutcomes(codeartssim.StandardPrefixOutcomes()))
	require.NoError(t, sim.Start("127.0.0.1:0"))
	t.Cleanup(func() { _ = sim.Close() })
	base, natsURL := startUIWorker(t, sim)

	r := cli(t, "", append([]string{"enqueue", "--campaign", "outage-7", "--nats-url", natsURL}, append(ids("c", 20), ids("404", 3)...)...)...)
	require.Zero(t, r.code, r.err)

	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"/")))
	row := `document.querySelector('#campaigns tr[data-campaign="outage-7"]')`
	cell := func(k string) string { return row + `?.querySelector('[data-k="` + k + `"]')?.textContent` }
	waitPage(t, bctx, 60*time.Second, cell("in_flight")+` === "0" && `+cell("recovered")+` === "20"`, "the campaign drained on the page")
	require.Equal(t, "23", pageEval[string](t, bctx, cell("enqueued")))
	require.Equal(t, "3", pageEval[string](t, bctx, cell("dead_lettered")))
	require.Equal(t, "done", pageEval[string](t, bctx, cell("eta")))
	require.False(t, pageEval[bool](t, bctx, `document.getElementById('campaigns-card').hidden`))

	rep := cli(t, "", "report", "--campaign", "outage-7", "--json", "--nats-url", natsURL)
	require.Zero(t, rep.code, rep.err)
	require.Contains(t, rep.out, `"recovered": 20`)
	require.Contains(t, rep.out, `"dead_lettered": 3`)

	href := pageEval[string](t, bctx, row+`.querySelector('[data-k="report-csv"]').href`)
	require.True(t, strings.HasPrefix(href, base+"/api/campaigns/outage-7/report"), href)
	resp, err := noKeepAlive().Get(href)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, 24, strings.Count(string(body), "\n"), "a header and a row per job")
	require.Equal(t, 20, strings.Count(string(body), ",recovered,"))
	require.Equal(t, 3, strings.Count(string(body), ",dead_lettered,false,client_error,404,CB.00060214,"))

	// The listener's Host allow-list covers the download too.
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, href, nil)
	require.NoError(t, err)
	req.Host = "attacker.example"
	resp, err = noKeepAlive().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
}
