package tests

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/store/storetest"
)

// The playground tests run on the embedded backend only: they check the page and its
// assets, not storage, and a browser run is the slowest test there is.

// TestPlaygroundServesVendoredAssets checks over plain HTTP that the page references
// only files this server serves, with matching SRI hashes and a CSP that allows them.
func TestPlaygroundServesVendoredAssets(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, backends[0].config(t))

	resp, page := httpGet(t, env.srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self' 'sha256-", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}

	// Every src and href of the page is one of our files, with a correct integrity.
	refs := regexp.MustCompile(`(?s)(?:src|href)="([^"]*)"\s+integrity="([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) != 4 {
		t.Fatalf("page references %d scripts and styles, want 4 (graphiql js/css, react, react-dom):\n%s", len(refs), page)
	}
	if n := strings.Count(string(page), "src=") + strings.Count(string(page), "href="); n != len(refs) {
		t.Errorf("page has %d src/href attributes, %d of them with integrity", n, len(refs))
	}
	for _, ref := range refs {
		assetURL, integrity := html.UnescapeString(ref[1]), html.UnescapeString(ref[2])
		if !strings.HasPrefix(assetURL, "/playground/") {
			t.Errorf("page loads %s from outside this server", assetURL)
			continue
		}
		resp, body := httpGet(t, env.srv.URL+assetURL, http.Header{"Accept-Encoding": {"identity"}})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", assetURL, resp.StatusCode)
			continue
		}
		sum := sha512.Sum384(body)
		if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
			t.Errorf("%s: integrity %s, page says %s", assetURL, got, integrity)
		}
		wantType := map[bool]string{true: "text/javascript; charset=utf-8", false: "text/css; charset=utf-8"}[strings.HasSuffix(assetURL, ".js")]
		if got := resp.Header.Get("Content-Type"); got != wantType {
			t.Errorf("%s: Content-Type %q, want %q", assetURL, got, wantType)
		}
		if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", assetURL, got)
		}

		// The gzipped variant is the same file; its ETag revalidates to 304.
		gzResp, gz := httpGet(t, env.srv.URL+assetURL, http.Header{"Accept-Encoding": {"gzip, br"}})
		if gzResp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: not gzipped for Accept-Encoding: gzip", assetURL)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatalf("%s: %v", assetURL, err)
		}
		if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, body) {
			t.Errorf("%s: gzipped body differs from the file", assetURL)
		}
		notModified, _ := httpGet(t, env.srv.URL+assetURL, http.Header{
			"Accept-Encoding": {"gzip"}, "If-None-Match": {gzResp.Header.Get("ETag")}})
		if notModified.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", assetURL, notModified.StatusCode)
		}
	}

	for _, path := range []string{"/playground/", "/playground/nope.js", "/playground/../go.mod", "/playground/README.md"} {
		if resp, _ := httpGet(t, env.srv.URL+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := httpGet(t, env.srv.URL+"/playground/graphiql-4.1.2/LICENSE", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET graphiql's LICENSE: %d", resp.StatusCode)
	}
}

// TestPlaygroundRunsQueriesInBrowser drives GraphiQL in headless Chromium: the page
// renders from this server alone, runs a query, and sends the Headers tab's bearer token.
// PLAYGROUND_SCREENSHOT=file.png saves what the browser shows after the query.
func TestPlaygroundRunsQueriesInBrowser(t *testing.T) {
	t.Parallel()
	storetest.RequireCommand(t, "chromium")
	chromium, _ := exec.LookPath("chromium")
	// With the production budgets: GraphiQL's schema fetch costs 0 points, which a rate
	// limiter once refused.
	cfg := backends[0].config(t)
	cfg.RateLimit = guard.DefaultRateLimit
	env := newTestEnv(t, cfg)
	merchant, customer := env.signUp("MERCHANT"), env.signUp("CUSTOMER")
	env.createProduct(merchant, "Playground Lamp", 1999, 3)
	env.createProduct(merchant, "Playground Desk", 24900, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancel = chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()

	browser := &browserEvents{}
	if err := chromedp.Listen(ctx, browser.record); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		// A step that cannot finish (say, a blocked script left no editor) fails in
		// seconds, not at the test's deadline.
		stepCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(stepCtx, steps...); err != nil {
			t.Fatalf("%s: %v\nbrowser:\n%s", what, err, browser)
		}
	}

	const (
		query         = `{ products(first: 2) { totalCount nodes { name } } me { email } }`
		queryEditor   = `.graphiql-query-editor .CodeMirror`
		headersEditor = `.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror`
		result        = `.graphiql-response .CodeMirror`
	)
	headers := fmt.Sprintf(`{"Authorization": "Bearer %s"}`, customer.Token)
	run("load the playground",
		chromedp.Navigate(env.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(queryEditor)),
	)
	run("open the docs explorer: the schema loaded",
		chromedp.Click(chromedp.CSS(`.graphiql-sidebar button[aria-label="Show Documentation Explorer"]`)),
	)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const d = document.querySelector('.graphiql-doc-explorer'); return !!d && d.innerText.includes('Query') })()`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the docs explorer does not list Query (the schema did not load): %v\nbrowser:\n%s", err, browser)
	}
	run("enter the query and the Authorization header",
		setEditor(queryEditor, query),
		chromedp.Click(chromedp.CSS(`.graphiql-editor-tools button[data-name="headers"]`)),
		chromedp.WaitVisible(chromedp.CSS(headersEditor)),
		setEditor(headersEditor, headers),
		chromedp.Click(chromedp.CSS(`.graphiql-execute-button`)),
	)
	out, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const v = document.querySelector('`+result+`')?.CodeMirror.getValue(); return v && v.includes('"data"') && v })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("wait for the result: %v\nbrowser:\n%s", err, browser)
	}
	if path := os.Getenv("PLAYGROUND_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(path, png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}

	var got struct {
		Data struct {
			Products struct {
				TotalCount int
				Nodes      []struct{ Name string }
			}
			Me *struct{ Email string }
		}
		Errors []gqlError
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("result pane is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, n := range got.Data.Products.Nodes {
		names = append(names, n.Name)
	}
	if got.Data.Products.TotalCount != 2 || strings.Join(names, ",") != "Playground Desk,Playground Lamp" {
		t.Errorf("result pane shows products %d %v, want the two created, newest first:\n%s", got.Data.Products.TotalCount, names, out)
	}
	if got.Data.Me == nil || got.Data.Me.Email != customer.Email {
		t.Errorf("me = %+v, want %s: the Headers tab's Authorization did not reach the server:\n%s", got.Data.Me, customer.Email, out)
	}

	// The headers survive a reload (GraphiQL keeps them in localStorage, a moment after
	// the last edit), so a merchant pastes the token once.
	tokenJS, _ := json.Marshal(customer.Token)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`JSON.stringify(Object.entries(localStorage)).includes(`+string(tokenJS)+`)`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("headers never reached localStorage: %v", err)
	}
	run("reload and show the headers",
		chromedp.Reload(),
		chromedp.Click(chromedp.CSS(`.graphiql-editor-tools button[data-name="headers"]`)),
		chromedp.WaitVisible(chromedp.CSS(headersEditor)),
	)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.querySelector('`+headersEditor+`')?.CodeMirror.getValue().includes(`+string(tokenJS)+`)`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		stored, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(Object.entries(localStorage))`))
		t.Errorf("after a reload the Headers tab lacks the token: %v\nlocalStorage: %s", err, stored)
	}

	origin, _ := url.Parse(env.srv.URL)
	for _, problem := range browser.problems(origin) {
		t.Error(problem)
	}
}

// setEditor replaces the text of the CodeMirror editor that sel finds, as pasting would.
func setEditor(sel, text string) chromedp.Action[chromedp.Void] {
	js, _ := json.Marshal(text)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).CodeMirror.setValue(%s)`, sel, js))
}

// browserEvents records what the page requested and complained about.
type browserEvents struct {
	mu       sync.Mutex
	requests []string
	messages []string
}

// record is the chromedp listener: it must return at once.
func (b *browserEvents) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL[:min(len(ev.Request.URL), 100)]) // data: URLs are long
	case *network.EventWebSocketCreated:
		b.requests = append(b.requests, ev.URL)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			b.messages = append(b.messages, fmt.Sprintf("%s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *runtime.EventExceptionThrown:
		b.messages = append(b.messages, "exception: "+ev.ExceptionDetails.Text+" "+exceptionDescription(ev.ExceptionDetails))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.messages = append(b.messages, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	}
}

func exceptionDescription(d *runtime.ExceptionDetails) string {
	if d.Exception == nil {
		return ""
	}
	return d.Exception.Description
}

// problems lists requests that left origin (data: URLs are GraphiQL's embedded fonts and
// icons) and every error or warning the page logged, CSP violations included.
func (b *browserEvents) problems(origin *url.URL) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, raw := range b.requests {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "data" && u.Host != origin.Host) {
			out = append(out, "request left the server's origin: "+raw)
		}
	}
	for _, m := range b.messages {
		if strings.HasSuffix(m, origin.String()+"/favicon.ico") {
			continue // the browser asks for it on its own; the service has none
		}
		out = append(out, "browser: "+m)
	}
	if len(b.requests) == 0 {
		out = append(out, "no requests recorded: the network listener saw nothing")
	}
	return out
}

func (b *browserEvents) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "requests:\n  " + strings.Join(b.requests, "\n  ") + "\nmessages:\n  " + strings.Join(b.messages, "\n  ")
}

// httpGet sends a GET with header and returns the response and its body.
func httpGet(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	// Do not let the client decompress: the test checks what the server sends.
	if req.Header.Get("Accept-Encoding") == "" {
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
