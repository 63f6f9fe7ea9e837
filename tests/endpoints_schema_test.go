package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/shop/api/graph"
)

// introspectionQuery asks for all of a schema that introspection tells, as client code
// generators ask for it: types with their fields, arguments, input fields, enum values,
// interfaces and possible types, deprecations and descriptions, and the directives.
const introspectionQuery = `query Introspection {
  __schema {
    description
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}`

// specifiedDirectives are the directives every GraphQL schema has, which an SDL leaves out
// and a client's schema builder adds (graphql-js, gqlparser).
var specifiedDirectives = map[string]bool{"include": true, "skip": true, "deprecated": true, "specifiedBy": true, "oneOf": true}

// TestIntrospectionServesTheSchemaArtifact: what the service's introspection serves is
// graph/schema.graphql, the SDL front-end teams generate clients from, directives included:
// the file read as a client reads it (the specified directives and those it declares),
// introspected by gqlgen, answers as the service does through its HTTP handler. And
// @defer, which the service does not deliver incrementally, is not offered: a query using
// it fails validation rather than answering null.
func TestIntrospectionServesTheSchemaArtifact(t *testing.T) {
	t.Parallel()
	sdl, err := os.ReadFile("../graph/schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	src := &ast.Source{Name: "graph/schema.graphql", Input: string(sdl)}
	declared, perr := parser.ParseSchema(src)
	if perr != nil {
		t.Fatal(perr)
	}
	fileSchema, gerr := gqlparser.LoadSchema(src)
	if gerr != nil {
		t.Fatal(gerr)
	}
	for name := range fileSchema.Directives { // gqlparser's prelude adds @defer
		if !specifiedDirectives[name] && declared.Directives.ForName(name) == nil {
			delete(fileSchema.Directives, name)
		}
	}
	fromFile := handler.New(graph.NewExecutableSchema(graph.Config{Schema: fileSchema}))
	fromFile.AddTransport(transport.POST{})
	fromFile.Use(extension.Introspection{})
	body, _ := json.Marshal(map[string]any{"query": introspectionQuery})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	fromFile.ServeHTTP(rec, req)
	var want gqlResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &want); err != nil || len(want.Errors) > 0 || len(want.Data) == 0 {
		t.Fatalf("introspection of graph/schema.graphql: %v %s", err, rec.Body.String())
	}

	env := &testEnv{t: t, srv: rawServer(t, config{Introspection: true})}
	got := env.anon().post(introspectionQuery, nil)
	if len(got.Errors) > 0 {
		t.Fatalf("introspection: %v", got.Errors)
	}
	served, file := introspected(t, got.Data), introspected(t, want.Data)
	for name, w := range file {
		if g, ok := served[name]; !ok {
			t.Errorf("graph/schema.graphql has %s, which introspection does not serve", name)
		} else if g != w {
			t.Errorf("introspection serves %s otherwise than graph/schema.graphql:\nserved: %s\nfile:   %s", name, g, w)
		}
	}
	for name := range served {
		if _, ok := file[name]; !ok {
			t.Errorf("introspection serves %s, which graph/schema.graphql lacks", name)
		}
	}
	if t.Failed() {
		t.Log("regenerate the file: go run . schema > graph/schema.graphql")
	}
	for name := range served {
		if strings.HasPrefix(name, "directive @") && !specifiedDirectives[strings.TrimPrefix(name, "directive @")] &&
			declared.Directives.ForName(strings.TrimPrefix(name, "directive @")) == nil {
			t.Errorf("introspection serves %s, which is neither specified nor declared", name)
		}
	}

	r := env.anon().post(`{ products(first: 1) { nodes { id ... @defer { name } } } }`, nil)
	if r.Code() != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(r.Errors[0].Message, "defer") {
		t.Errorf("a query with @defer: data %s, errors %v; want a validation error naming @defer", r.Data, r.Errors)
	}
}

// introspected is an introspection answer by what it describes ("type Product", "directive
// @skip", "schema" for the roots), each in one canonical JSON form.
func introspected(t *testing.T, data json.RawMessage) map[string]string {
	t.Helper()
	var answer struct {
		Schema map[string]json.RawMessage `json:"__schema"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	canonical := func(raw json.RawMessage) (string, string) {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		m, _ := v.(map[string]any)
		// An interface's implementations come in the order the schema files were read:
		// the SDL file has one file's order, the service another. The set is what counts.
		if pt, ok := m["possibleTypes"].([]any); ok {
			slices.SortFunc(pt, func(a, b any) int {
				return strings.Compare(fmt.Sprint(a.(map[string]any)["name"]), fmt.Sprint(b.(map[string]any)["name"]))
			})
		}
		b, _ := json.Marshal(v) // sorted keys, one escaping
		name, _ := m["name"].(string)
		return name, string(b)
	}
	for key, raw := range answer.Schema {
		switch key {
		case "types", "directives":
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatal(err)
			}
			for _, item := range list {
				name, v := canonical(item)
				if key == "types" {
					out["type "+name] = v
				} else {
					out["directive @"+name] = v
				}
			}
		default:
			_, v := canonical(raw)
			out["schema "+key] = v
		}
	}
	return out
}
