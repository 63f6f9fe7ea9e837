package guard_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shop/api/api"
	"github.com/shop/api/api/apitest"
	"github.com/shop/api/api/guard"
)

// The limits on an operation's shape and cost, through the service as server.go runs it.

// nested returns a products → nodes → merchant chain repeated levels times, each
// connection asking for first items, around leaf.
func nested(levels int, first int, leaf string) string {
	q := leaf
	for range levels {
		q = fmt.Sprintf("products(first: %d) { nodes { merchant { %s } } }", first, q)
	}
	return "{ " + q + " }"
}

func TestLimitsRefuseAbusiveOperations(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{}, nil)
	deep := "id"
	for range 49 {
		deep = "merchant { " + deep + " }"
	}
	deep = "{ products { nodes { " + deep + " } } }" // 50 fields deep with nodes and products

	var aliases strings.Builder
	aliases.WriteString("{")
	for i := range 1000 {
		fmt.Fprintf(&aliases, " a%d: __typename", i)
	}
	aliases.WriteString(" }")

	// Two tokens per "@a": 40,000 tokens in 40 KB, under the 64 KiB size limit.
	tokens := "{ __typename " + strings.Repeat("@a", 20_000) + " }"
	// A megabyte of comment is no token at all, under the 1 MiB body limit.
	long := "{ __typename }\n#" + strings.Repeat("x", 1_000_000)

	cases := []struct {
		name, query, want string
	}{
		{"depth 50", deep, "deep"},
		{"1,000 aliases", aliases.String(), "aliases"},
		{"first: 100 nested four deep", nested(4, 100, "id"), "costs"},
		{"40,000 tokens", tokens, "tokens"},
		{"a megabyte of comment", long, "bytes long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := env.Post(t, "", c.query)
			if r.Code() != guard.CodeComplexityLimit {
				t.Fatalf("status %d, errors %.300v: want %s", r.Status, r.Errors, guard.CodeComplexityLimit)
			}
			if !strings.Contains(r.Errors[0].Message, c.want) {
				t.Errorf("message %q does not say %q", r.Errors[0].Message, c.want)
			}
			if string(r.Data) != "" && string(r.Data) != "null" {
				t.Errorf("refused operation returned data %s", r.Data)
			}
		})
	}
}

func TestLimitsAllowOrdinaryOperationsAndReportCost(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{}, nil)
	r := env.Post(t, "", nested(2, 20, "id name"))
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	cost, _ := r.Extensions["cost"].(map[string]any)
	// products(20) { nodes { merchant { products(20) { nodes { merchant { id name } } } } } }
	// = 1 + 20 * (1 + 1 + (1 + 20 * (1 + (1 + 2)))) = 1661.
	if cost["requested"] != float64(1661) || cost["maximum"] != float64(guard.DefaultLimits.MaxCost) {
		t.Errorf("extensions.cost = %v, want requested 1661 and maximum %d", cost, guard.DefaultLimits.MaxCost)
	}
	// A larger page than 100 is the resolver's BAD_USER_INPUT, not a cost refusal.
	if r := env.Post(t, "", `{ products(first: 1000) { totalCount } }`); r.Code() != guard.CodeBadUserInput {
		t.Errorf("first: 1000 gave %v, want BAD_USER_INPUT", r.Errors)
	}
}

func TestLimitsAreConfigurable(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{Limits: guard.Limits{MaxDepth: 3, MaxAliases: 1, MaxCost: 50, MaxTokens: 20}}, nil)
	for _, q := range []string{
		`{ products { nodes { merchant { id } } } }`,    // depth 4
		`{ a: __typename b: __typename }`,               // two aliases
		`{ products(first: 20) { nodes { id name } } }`, // costs 61
		`{ __typename ` + strings.Repeat("__typename ", 20) + `}`,
	} {
		if r := env.Post(t, "", q); r.Code() != guard.CodeComplexityLimit {
			t.Errorf("%s: errors %v, want %s", q, r.Errors, guard.CodeComplexityLimit)
		}
	}
	if r := env.Post(t, "", `{ products(first: 2) { nodes { id } } }`); len(r.Errors) > 0 {
		t.Errorf("small query refused: %v", r.Errors)
	}
}

func TestLimitsCountFragmentsWhereSpread(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{}, nil)
	// Each fragment spreads the next twice: 2^20 aliases once expanded, from a tiny document.
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range 20 {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d x%d: __typename ...F%d }\n", i, i+1, i, i+1)
	}
	b.WriteString("fragment F20 on Query { a: __typename }\n")
	if r := env.Post(t, "", b.String()); r.Code() != guard.CodeComplexityLimit {
		t.Fatalf("fragment bomb: %v, want %s", r.Errors, guard.CodeComplexityLimit)
	}
}

func TestProductionHidesSuggestions(t *testing.T) {
	t.Parallel()
	for _, production := range []bool{false, true} {
		env := apitest.Start(t, api.Config{Production: production}, nil)
		r := env.Post(t, "", `{ prodcts { totalCount } }`)
		if r.Code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("errors %v", r.Errors)
		}
		if got := strings.Contains(r.Errors[0].Message, "Did you mean"); got == production {
			t.Errorf("production=%v: message %q", production, r.Errors[0].Message)
		}
	}
}

// Introspection is not free: a schema query is charged like a full page of products.
func TestIntrospectionHasACost(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{}, nil)
	r := env.Post(t, "", `{ __schema { queryType { name } } }`)
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	cost, _ := r.Extensions["cost"].(map[string]any)
	if requested, _ := cost["requested"].(float64); requested < 1000 {
		t.Errorf("introspection costs %v, want at least 1,000", cost["requested"])
	}
}

// A query without variables is costed once per document and its cost kept; one with
// variables is costed for each request's.
func TestCostIsEachRequestsOwn(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, api.Config{}, nil)
	requested := func(r apitest.Response) any {
		t.Helper()
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		cost, _ := r.Extensions["cost"].(map[string]any)
		return cost["requested"]
	}
	for range 2 {
		if got := requested(env.Post(t, "", `{ products(first: 20) { nodes { id } } }`)); got != float64(41) {
			t.Errorf("first: 20 costs %v, want 41", got)
		}
	}
	const byVariable = `query($n: Int) { products(first: $n) { nodes { id } } }`
	for _, n := range []int{2, 20, 2} {
		if got := requested(env.PostVars(t, "", byVariable, map[string]any{"n": n})); got != float64(1+2*n) {
			t.Errorf("first: $n = %d costs %v, want %d", n, got, 1+2*n)
		}
	}
}
