package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTinySchema generates the executor of testdata/tiny, a schema with each shape the
// templates tell apart and those the shop's schema grows by (batch relations to an object,
// a nullable object and a list, a resolver field with arguments, a field directive, an
// interface, a mutation and a subscription), in a copy inside the module, and builds and
// vets it: a new relation in the schema either takes a fast path that compiles or stays
// on gqlgen's. The generated code is then checked for the paths each field must take.
func TestTinySchema(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a schema: skipped with -short")
	}
	dir, err := os.MkdirTemp("testdata", "gen-")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ = filepath.Abs(dir)
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The copy's import path: this package's, then its place under testdata.
	module := "github.com/shop/api/graph/internal/execgen/testdata/" + filepath.Base(dir)
	if err := os.Mkdir(filepath.Join(dir, "ids"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gqlgen.yml", "schema.graphqls", "ids/ids.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "tiny", name))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "MODULE", module))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	if err := generate(); err != nil {
		t.Fatalf("generate: %v", err)
	}
	// Named one by one: "./..." would skip them, as it skips any directory in testdata.
	pkgs := []string{"./graph", "./graph/model", "./resolvers", "./ids"}
	for _, args := range [][]string{append([]string{"build"}, pkgs...), append([]string{"vet"}, pkgs...)} {
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s of the tiny schema's executor: %v\n%s", args[0], err, out)
		}
	}
	src, err := os.ReadFile(filepath.Join("graph", "generated.go"))
	if err != nil {
		t.Fatal(err)
	}
	code := string(src)
	for _, c := range []struct{ field, want string }{
		{"_Shop_rank", "return exec.MarshalIntField(&obj.Rank)"},
		{"_Shop_name", "return exec.MarshalStringField(&obj.Name)"},
		{"_Shop_open", "return ec.marshalNBoolean2bool(ctx, field.Selections, obj.Open)"},
		{"_Shop_status", "return ec.marshalNStatus2"},
		{"_Shop_price", "return exec.NewPlainObjectIn(&ec.objects, ec.OperationContext, ec.collected.Of(ec.OperationContext, field.Selections, priceImplementors), obj.Price, write_Price)"},
		{"_Shop_owner", "if v, ok := exec.BatchedObject[*model.Shop, ids.Person](ctx, \"Shop\", field, plainFields_Person); ok {"},
		{"_Payment_amount", "if exec.PlainSelections(field.Selections) {"},
		{"_Payment_ok", "return ec.marshalNBoolean2bool(ctx, field.Selections, obj.Ok)"},
		{"_Review_stars", "return exec.MarshalIntField(&obj.Stars)"},
		{"_Review_id", "return exec.MarshalGlobalID(obj)"},
		// A GlobalID without AppendGlobalID is marshaled as gqlgen does, at once.
		{"_Person_id", "return ec.marshalNID2string(ctx, field.Selections, obj.GlobalID())"},
		// A batch field of a list's element is resolved once for the list (exec.BatchFor).
		{"_Shop_owner", "if ret, ok := ec.batched_Shop_owner(ctx, field); ok {"},
		{"_Shop_manager", "if ret, ok := ec.batched_Shop_manager(ctx, field); ok {"},
		{"_Shop_payments", "if ret, ok := ec.batched_Shop_payments(ctx, field); ok {"},
		{"batched_Shop_payments", "v, ok := exec.BatchValue[[]model.Payment](batch, r)"},
		// A time is written from its field unless zero, which gqlgen marshals to null.
		{"_Shop_opened", "return exec.MarshalTimeField(&obj.Opened)"},
		// gqlgen's path: a zero time, a directive is field middleware, a
		// nullable object or a list is no plain value, a batch list no single object (each
		// after the BatchFor path above).
		{"_Shop_opened", "return graphql.ResolveField("},
		{"_Shop_motto", "return graphql.ResolveField("},
		{"_Shop_discount", "return graphql.ResolveField("},
		{"_Shop_notes", "return graphql.ResolveField("},
		{"_Shop_manager", "return graphql.ResolveField("},
		{"_Shop_payments", "return graphql.ResolveField("},
		{"_Review_text", "return graphql.ResolveField("},
	} {
		if body := function(code, "func (ec *executionContext) "+c.field+"("); !strings.Contains(body, c.want) {
			t.Errorf("%s lacks %q:\n%s", c.field, c.want, body)
		}
	}
	for _, want := range []string{
		`var plainFields_Person = map[string]bool{"__typename": true, "id": true, "name": true}`,
		"var later exec.LaterFields", // Shop's reviews and batch fields
		"exec.MarshalValues(ctx, 0, false, ec, sel, v, (*executionContext)._Payment)",
		"exec.WithBatchParentValues(ctx, \"Shop\", v)",
	} {
		if !strings.Contains(code, want) {
			t.Errorf("the executor lacks %q", want)
		}
	}
}

// function returns the Go function that starts with head in code, up to its closing brace.
func function(code, head string) string {
	i := strings.Index(code, head)
	if i < 0 {
		return ""
	}
	end := strings.Index(code[i:], "\n}\n")
	if end < 0 {
		return code[i:]
	}
	return code[i : i+end]
}
