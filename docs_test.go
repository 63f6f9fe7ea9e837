package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// The docs are checked like code: the API reference against the schema clients generate
// from, and every link against the repository, so that a renamed field or a moved page
// fails here instead of misleading a reader.

// docPages are the pages the link check reads: the README and every page under docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no pages under docs/")
	}
	return append([]string{"README.md"}, pages...)
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	fence      = regexp.MustCompile("(?ms)^ {0,3}(```|~~~)[^\n]*\n.*?^ {0,3}```[ \t]*$")
	codeSpan   = regexp.MustCompile("`[^`\n]+`")
	identifier = regexp.MustCompile(`[_A-Za-z][_0-9A-Za-z]*`)
)

// codeNames returns every identifier written as code in a Markdown page: in fenced blocks
// and inline code spans. A schema name counts as documented only there, so that the word
// "order" in a sentence does not stand for the type Order or the query order.
func codeNames(page string) map[string]bool {
	names := map[string]bool{}
	add := func(code string) {
		for _, n := range identifier.FindAllString(code, -1) {
			names[n] = true
		}
	}
	for _, block := range fence.FindAllString(page, -1) {
		add(block)
	}
	for _, span := range codeSpan.FindAllString(fence.ReplaceAllString(page, ""), -1) {
		add(span)
	}
	return names
}

// The API reference in docs/api.md names every type, query, mutation, subscription and
// enum value of the schema (graph/schema.graphql, which a test keeps equal to what the
// server serves). A name added to the schema fails here until the reference describes it.
func TestDocsAPIReferenceCoversSchema(t *testing.T) {
	sdl := readDoc(t, filepath.Join("graph", "schema.graphql"))
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "graph/schema.graphql", Input: sdl})
	if err != nil {
		t.Fatal(err)
	}
	documented := codeNames(readDoc(t, filepath.Join("docs", "api.md")))

	var missing []string
	need := func(what, name string) {
		if !documented[name] {
			missing = append(missing, fmt.Sprintf("the schema's %s `%s`", what, name))
		}
	}
	for name, def := range schema.Types {
		if def.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		need(strings.ToLower(string(def.Kind)), name)
		for _, v := range def.EnumValues {
			need("enum value of "+name, v.Name)
		}
	}
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if !strings.HasPrefix(f.Name, "__") {
				need(strings.ToLower(root.Name)+" field", f.Name)
			}
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("docs/api.md does not name %s (as code, in backticks or a code block)", m)
	}
}

// The test must be able to fail: a page without the names misses them.
func TestDocsCodeNamesReadOnlyCode(t *testing.T) {
	got := codeNames("The order of `Query.product` and\n\n```graphql\ntype Money { amount: Int! }\n```\nnot Order.\n")
	for _, n := range []string{"Query", "product", "Money", "amount", "Int"} {
		if !got[n] {
			t.Errorf("%s written as code was not found", n)
		}
	}
	for _, n := range []string{"order", "Order", "not"} {
		if got[n] {
			t.Errorf("%s outside code counted as documented", n)
		}
	}
}

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink  = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:\s*(\S+)`)
	autoLink = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s<>()\x60"'\]|]+`)
	heading  = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t#]*$`)
)

// docLinks returns the targets of a page's Markdown links, outside code.
func docLinks(page string) []string {
	prose := codeSpan.ReplaceAllString(fence.ReplaceAllString(page, ""), "")
	var links []string
	for _, re := range []*regexp.Regexp{mdLink, refLink} {
		for _, m := range re.FindAllStringSubmatch(prose, -1) {
			links = append(links, m[1])
		}
	}
	return links
}

// anchors returns the fragment identifiers GitHub gives a page's headings: lower case,
// punctuation dropped, spaces as hyphens, and -1, -2… for repeats.
func anchors(page string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(page, ""), -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(strings.ReplaceAll(m[1], "`", "")) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// localURL reports whether an absolute URL is a local example (the service on this
// machine) or a placeholder on a domain reserved for examples (RFC 2606: .example,
// example.com), the kinds of absolute URL the docs may carry: none leads anywhere.
func localURL(raw string) bool {
	u, err := url.Parse(strings.TrimRight(raw, ".,;:"))
	if err != nil {
		return false
	}
	host := u.Hostname()
	switch {
	case host == "localhost", host == "127.0.0.1", host == "::1":
		return true
	case host == "example" || strings.HasSuffix(host, ".example"):
		return true
	case host == "example.com", host == "example.net", host == "example.org":
		return true
	}
	return false
}

// Every relative link in the README and docs/ reaches a file of this repository (and a
// heading, when it names one; a path from "/" starts at the repository's root); nothing links outside it, so the docs move with the code
// and a reader never lands on a page that changed under them. Absolute URLs, linked or
// written in examples, may only name this machine (http://localhost:8080/…).
func TestDocsLinksStayInTheRepository(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range docPages(t) {
		text := readDoc(t, page)
		for _, u := range autoLink.FindAllString(text, -1) {
			if strings.HasPrefix(strings.ToLower(u), "http") && !localURL(u) {
				t.Errorf("%s: %s leaves the repository", page, u)
			}
		}
		for _, link := range docLinks(text) {
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") || strings.HasPrefix(link, "//") {
				// http(s) URLs were checked above, wherever they are written.
				if !localURL(link) && !autoLink.MatchString(link) {
					t.Errorf("%s: link %s leaves the repository", page, link)
				}
				continue
			}
			path, frag, _ := strings.Cut(link, "#")
			target := page
			if path != "" {
				p, err := url.PathUnescape(path)
				if err != nil {
					t.Errorf("%s: link %s: %v", page, link, err)
					continue
				}
				target = filepath.Join(filepath.Dir(page), filepath.FromSlash(p))
				if strings.HasPrefix(p, "/") { // from the repository's root, as GitHub reads it
					target = filepath.Join(root, filepath.FromSlash(p))
				}
				abs, err := filepath.Abs(target)
				if err != nil {
					t.Fatal(err)
				}
				if rel, err := filepath.Rel(root, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					t.Errorf("%s: link %s points outside the repository", page, link)
					continue
				}
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s: link %s: no such file", page, link)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(target, ".md") {
				if !anchors(readDoc(t, target))[frag] {
					t.Errorf("%s: link %s: %s has no heading #%s", page, link, target, frag)
				}
			}
		}
	}
}

// The link check must be able to fail: an outside link, a missing file and a missing
// heading are each found.
func TestDocsLinkCheckFindsBadLinks(t *testing.T) {
	page := "# Shop API\n## A request's walk\nSee [x](../shared/CONTRACT.md), [y](https://example.com/), `[z](nope.md)`.\n```\n[w](gone.md)\n```\n"
	if got := docLinks(page); !slices.Equal(got, []string{"../shared/CONTRACT.md", "https://example.com/"}) {
		t.Errorf("links %q", got)
	}
	if a := anchors(page); !a["shop-api"] || !a["a-requests-walk"] {
		t.Errorf("anchors %v", a)
	}
	if localURL("https://example.org.evil/") || localURL("https://shop.com/") || !localURL("http://localhost:8080/graphql") || !localURL("https://tracking.example/1Z") {
		t.Error("localURL")
	}
}

// The README is the entry point: short, and linking every page under docs/.
func TestReadmeLinksEveryDocsPage(t *testing.T) {
	readme := readDoc(t, "README.md")
	if n := strings.Count(readme, "\n"); n > 250 {
		t.Errorf("README.md has %d lines; keep it under 250 and move the topic to docs/", n)
	}
	linked := map[string]bool{}
	for _, l := range docLinks(readme) {
		path, _, _ := strings.Cut(l, "#")
		linked[filepath.Clean(path)] = true
	}
	for _, page := range docPages(t)[1:] {
		if !linked[page] {
			t.Errorf("README.md does not link %s", page)
		}
	}
}
