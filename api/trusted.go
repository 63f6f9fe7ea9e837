package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/auth"
	"github.com/shop/api/graph"
	"github.com/shop/api/store"
)

// TrustedConfig configures the allow-list of operations (trusted documents).
type TrustedConfig struct {
	// Manifest is the path of an Apollo persisted query manifest; empty turns the allow-list off.
	Manifest string
	// AdminBypass lets ADMIN callers run operations outside the manifest (GraphiQL).
	AdminBypass bool
}

// manifest is Apollo's persisted query manifest, as @apollo/generate-persisted-query-manifest
// (and graphql-codegen through it) writes it.
type manifest struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Operations []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Body string `json:"body"`
	} `json:"operations"`
}

// TrustedDocuments is the allow-list: only the manifest's operations run, sent by id
// (extensions.persistedQuery.sha256Hash) or by their text. It replaces automatic persisted
// queries, so nothing a client sends is ever registered.
type TrustedDocuments struct {
	byID        map[string]string // id (sha256 of the body) → body
	byTokens    map[string]string // tokens of the body → body
	maxTokens   int
	adminBypass bool
}

// NewTrustedDocuments reads the manifest at cfg.Manifest: nil when it is empty, an error
// when the file does not decode as a version 1 manifest, is empty, or has an operation
// whose id is not the SHA-256 of its body or whose body does not validate against the
// schema (a manifest built for another schema).
func NewTrustedDocuments(cfg TrustedConfig) (*TrustedDocuments, error) {
	if cfg.Manifest == "" {
		return nil, nil
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("PERSISTED_OPERATIONS %s: %s", cfg.Manifest, fmt.Sprintf(format, args...))
	}
	raw, err := os.ReadFile(cfg.Manifest)
	if err != nil {
		return nil, fmt.Errorf("PERSISTED_OPERATIONS: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fail("not JSON: %v", err)
	}
	if m.Format != "apollo-persisted-query-manifest" || m.Version != 1 {
		return nil, fail(`want format "apollo-persisted-query-manifest" version 1, got %q version %d`, m.Format, m.Version)
	}
	if len(m.Operations) == 0 {
		return nil, fail("no operations: every operation but an admin's would be refused")
	}
	schema := graph.Schema()
	d := &TrustedDocuments{byID: map[string]string{}, byTokens: map[string]string{}, adminBypass: cfg.AdminBypass}
	for i, op := range m.Operations {
		if id := queryHash(op.Body); op.ID != id {
			return nil, fail("operation %d (%s): id %q is not the SHA-256 of its body (%s)", i, op.Name, op.ID, id)
		}
		doc, gerr := parser.ParseQuery(&ast.Source{Input: op.Body})
		if gerr != nil {
			return nil, fail("operation %d (%s): %v", i, op.Name, gerr)
		}
		if errs := validator.ValidateWithRules(schema, doc, rules.NewDefaultRules()); len(errs) > 0 {
			return nil, fail("operation %d (%s) does not validate against the schema: %v", i, op.Name, errs)
		}
		tokens, n, _ := documentTokens(op.Body, -1)
		d.byID[op.ID] = op.Body
		d.byTokens[tokens] = op.Body
		d.maxTokens = max(d.maxTokens, n)
	}
	return d, nil
}

// Operations returns how many operations the manifest lists.
func (d *TrustedDocuments) Operations() int { return len(d.byID) }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = &TrustedDocuments{}

func (*TrustedDocuments) ExtensionName() string                   { return "TrustedDocuments" }
func (*TrustedDocuments) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters runs for every operation, whatever its transport (GET, POST,
// SSE, WebSocket), before anything parses it. An id it does not list is
// PERSISTED_QUERY_NOT_FOUND; a text it does not list is FORBIDDEN, unless an admin may
// bypass the list. A listed text is replaced by the manifest's body, so that what runs (and
// what the document cache keeps) is exactly what was listed.
func (d *TrustedDocuments) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	hash, err := persistedHash(p.Extensions)
	if err != nil {
		return err
	}
	if hash != "" {
		if p.Query == "" {
			body, ok := d.byID[hash]
			if !ok {
				return codedError(guard.CodePersistedQueryNotFound, "PersistedQueryNotFound")
			}
			p.Query = body
			return nil
		}
		if queryHash(p.Query) != hash {
			return codedError(guard.CodeBadUserInput, "provided persisted query hash does not match query")
		}
	}
	if p.Query == "" {
		return nil // nothing runs; gqlgen reports the missing query
	}
	if _, ok := d.byID[queryHash(p.Query)]; ok {
		return nil
	}
	if tokens, _, ok := documentTokens(p.Query, d.maxTokens); ok {
		if body, ok := d.byTokens[tokens]; ok {
			p.Query = body
			return nil
		}
	}
	if d.adminBypass && auth.ViewerFrom(ctx).Role == store.RoleAdmin {
		return nil
	}
	return codedError(guard.CodeForbidden, "this operation is not in the server's list of persisted operations: send one of the app's operations, by its id")
}

// persistedHash returns extensions.persistedQuery.sha256Hash, "" when there is none.
func persistedHash(ext map[string]any) (string, *gqlerror.Error) {
	pq, ok := ext["persistedQuery"]
	if !ok || pq == nil {
		return "", nil
	}
	m, ok := pq.(map[string]any)
	if !ok {
		return "", codedError(guard.CodeBadUserInput, "extensions.persistedQuery must be an object")
	}
	// The transports decode numbers as json.Number, WebSocket messages as float64.
	if v, ok := m["version"]; ok && fmt.Sprint(v) != "1" {
		return "", codedError(guard.CodeBadUserInput, "unsupported persisted query version")
	}
	hash, ok := m["sha256Hash"].(string)
	if !ok || hash == "" {
		return "", codedError(guard.CodeBadUserInput, "extensions.persistedQuery.sha256Hash must be a string")
	}
	return hash, nil
}

// documentTokens returns query's lexical tokens, one space apart, and their count: two
// documents with the same tokens differ only in whitespace, commas and comments, and parse
// to the same document. ok is false when query does not lex, or has more than limit tokens
// (limit < 0: no limit).
func documentTokens(query string, limit int) (tokens string, n int, ok bool) {
	lex := lexer.New(&ast.Source{Input: query})
	var b strings.Builder
	for {
		tok, err := lex.ReadToken()
		if err != nil {
			return "", n, false
		}
		switch tok.Kind {
		case lexer.EOF:
			return b.String(), n, true
		case lexer.Comment:
			continue
		}
		if n++; limit >= 0 && n > limit {
			return "", n, false
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		switch tok.Kind {
		case lexer.String, lexer.BlockString:
			// The value, quoted: a string's content may hold spaces or quotes.
			b.WriteString(strconv.Quote(tok.Value))
		case lexer.Name, lexer.Int, lexer.Float:
			b.WriteString(tok.Value)
		default:
			b.WriteString(tok.Kind.String()) // a punctuator
		}
	}
}

func queryHash(query string) string {
	sum := sha256.Sum256([]byte(query))
	return hex.EncodeToString(sum[:])
}

// codedError is a request error with extensions.code (HTTP 200, as for APQ's misses).
func codedError(code, msg string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", msg)
	errcode.Set(err, code)
	return err
}
