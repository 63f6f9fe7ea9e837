// Package playground serves GraphiQL for merchants from assets embedded in the binary: no
// CDN, a hash-based Content-Security-Policy and Subresource Integrity on every file.
package playground

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	gqlplayground "github.com/99designs/gqlgen/graphql/playground"
)

// The files GraphiQL's page loads, vendored from the npm registry (see
// README.md beside this file). They are the files gqlgen's default page takes from jsDelivr,
// byte for byte, so merchants behind a firewall get the same playground with no CDN.
// A new version goes into a new directory: the directory is part of the URL, which is
// what makes caching the files forever safe.
//
//go:embed graphiql-4.1.2 react-18.2.0 react-dom-18.2.0
var playgroundFiles embed.FS

const (
	playgroundPath = "/playground/"
	graphiqlJS     = "graphiql-4.1.2/graphiql.min.js"
	graphiqlCSS    = "graphiql-4.1.2/graphiql.min.css"
	reactJS        = "react-18.2.0/react.production.min.js"
	reactDOMJS     = "react-dom-18.2.0/react-dom.production.min.js"
	// playgroundStoragePrefix keeps this service's GraphiQL state (query, tabs, headers)
	// apart from other GraphiQLs a merchant opened on the same origin, e.g. localhost:8080.
	playgroundStoragePrefix = "shop-api:"
)

// playgroundAsset is one vendored file with what its responses need.
type playgroundAsset struct {
	body        []byte
	contentType string
	etag        string
	// integrity is the Subresource Integrity value of body (sha384).
	integrity string
	// gzipped compresses body on first use: most clients never ask for most files.
	gzipped func() []byte
}

// readAssets reads the embedded files and hashes them.
func readAssets() (map[string]*playgroundAsset, error) {
	assets := map[string]*playgroundAsset{}
	err := fs.WalkDir(playgroundFiles, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := playgroundFiles.ReadFile(name)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "text/plain; charset=utf-8" // the LICENSE files
		}
		sum256 := sha256.Sum256(body)
		sum384 := sha512.Sum384(body)
		assets[name] = &playgroundAsset{
			body:        body,
			contentType: ctype,
			etag:        `"` + hex.EncodeToString(sum256[:16]) + `"`,
			integrity:   "sha384-" + base64.StdEncoding.EncodeToString(sum384[:]),
			gzipped: sync.OnceValue(func() []byte {
				var buf bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
				_, _ = zw.Write(body)
				_ = zw.Close()
				return buf.Bytes()
			}),
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("playground: read embedded files: %w", err)
	}
	return assets, nil
}

// Playground is GraphiQL's page, rendered once, and the files it loads.
type Playground struct {
	page   []byte
	csp    string
	assets map[string]*playgroundAsset
}

// New renders GraphiQL's page for endpoint, loading every script and style from Assets,
// under a Content-Security-Policy that allows nothing else.
//
// The page is gqlgen's GraphiQL page. It is rendered once, here, because nothing in it
// depends on the request: the GraphQL URL and the subscription URL (ws: or wss:, same
// host, same path) are derived in the browser from location. Rendering up front lets
// the policy allow the page's inline script and style by hash, not 'unsafe-inline'.
func New(title, endpoint string) (*Playground, error) {
	assets, err := readAssets()
	if err != nil {
		return nil, err
	}
	url := func(name string) string { return playgroundPath + name }
	page := renderPlaygroundPage(gqlplayground.Handler(title, endpoint,
		gqlplayground.WithGraphiqlVersion(url(graphiqlJS), url(graphiqlCSS),
			assets[graphiqlJS].integrity, assets[graphiqlCSS].integrity),
		gqlplayground.WithGraphiqlReactVersion(url(reactJS), url(reactDOMJS),
			assets[reactJS].integrity, assets[reactDOMJS].integrity),
		// The explorer plugin would be one more vendored bundle; gqlgen leaves it off too.
		gqlplayground.WithGraphiqlEnablePluginExplorer(false),
		gqlplayground.WithStoragePrefix(playgroundStoragePrefix),
		// Not WithGraphiqlPersistStateInURL: it would copy the Headers tab, and with it
		// the bearer token, into the address bar and the browser history.
	))
	return &Playground{page: page, csp: playgroundCSP(page), assets: assets}, nil
}

// Page serves the GraphiQL page.
func (p *Playground) Page() http.Handler {
	page, csp := p.page, p.csp
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		_, _ = w.Write(page)
	})
}

// Assets serves the playground's scripts and styles from this binary, under
// /playground/<package>-<version>/<file>, with caching for a year: a file behind a URL
// never changes. It sends them gzipped to clients that accept it.
func (p *Playground) Assets() http.Handler {
	assets := p.assets
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := assets[strings.TrimPrefix(r.URL.Path, playgroundPath)]
		if a == nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Vary", "Accept-Encoding")
		body, etag := a.body, a.etag
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gzipped(), strings.TrimSuffix(a.etag, `"`)+`-gzip"`
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", etag)
		// ServeContent answers If-None-Match with 304, HEAD and ranges.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(acceptEncoding string) bool {
	for part := range strings.SplitSeq(acceptEncoding, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(coding) != "gzip" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// renderPlaygroundPage returns the body that page writes.
func renderPlaygroundPage(page http.Handler) []byte {
	rec := &pageRecorder{header: http.Header{}}
	page.ServeHTTP(rec, &http.Request{Method: http.MethodGet, Header: http.Header{}})
	return rec.body.Bytes()
}

// pageRecorder is the http.ResponseWriter renderPlaygroundPage hands to gqlgen's page.
type pageRecorder struct {
	header http.Header
	body   bytes.Buffer
}

func (p *pageRecorder) Header() http.Header         { return p.header }
func (p *pageRecorder) Write(b []byte) (int, error) { return p.body.Write(b) }
func (p *pageRecorder) WriteHeader(int)             {}

var (
	// inlineScript and inlineStyle match elements with a body and no attributes; the
	// page's external scripts all have a src attribute.
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
)

// playgroundCSP returns the Content-Security-Policy for page: scripts and styles from
// this origin and the page's own inline ones by hash; fetches and WebSockets to this
// origin only ('self' covers ws: and wss: on the same host); fonts and images from data:
// URLs, as GraphiQL's stylesheet embeds its fonts and icons; nothing else.
//
// GraphiQL's dialogs and menus (Radix UI) add a <style> element to lock scrolling while
// they are open; the policy blocks it, which only leaves the page scrollable behind them,
// and the page does not scroll anyway.
func playgroundCSP(page []byte) string {
	hashes := func(re *regexp.Regexp) string {
		var out []string
		for _, m := range re.FindAllSubmatch(page, -1) {
			sum := sha256.Sum256(m[1])
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		return strings.Join(out, " ")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self' " + hashes(inlineScript),
		"style-src 'self' " + hashes(inlineStyle),
		"font-src data:",
		"img-src 'self' data:",
		"connect-src 'self'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
