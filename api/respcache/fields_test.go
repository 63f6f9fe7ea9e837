package respcache

import (
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/shop/api/graph"
)

// TestEveryFieldIsClassified fails when the schema gains a field this package has not
// classified: a new field is private until someone says otherwise here.
func TestEveryFieldIsClassified(t *testing.T) {
	s := graph.Schema()
	n := 0
	for name, def := range s.Types {
		if (def.Kind != ast.Object && def.Kind != ast.Interface) || strings.HasPrefix(name, "__") {
			continue
		}
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			n++
			if !Classified(name, f.Name) {
				t.Errorf("%s.%s is not classified in fields.go: say whether it is public", name, f.Name)
			}
		}
	}
	if n < len(fields)-5 {
		t.Errorf("the schema has %d fields, fields.go classifies %d: drop the ones that went", n, len(fields))
	}
}

func TestClassify(t *testing.T) {
	s := graph.Schema()
	for _, c := range []struct {
		query                 string
		public, listsProducts bool
	}{
		{`{ products(first: 50) { nodes { id name price { amount currency } stock merchant { id name } } } }`, true, true},
		{`{ products { edges { cursor node { __typename id } } pageInfo { endCursor hasNextPage } totalCount } }`, true, true},
		{`query($id: ID!) { product(id: $id) { id name description merchant { name } } }`, true, false},
		{`{ products { nodes { ...P } } } fragment P on Product { id merchant { email } }`, false, true},
		{`{ products { nodes { ... on Product { name stockMovements { totalCount } } } } }`, false, true},
		{`{ products { nodes { id @skip(if: true) lowStockThreshold @skip(if: true) } } }`, false, true},
		{`{ me { id } }`, false, false},
		{`query($id: ID!) { node(id: $id) { id } }`, false, false},
		{`{ __schema { types { name } } }`, false, false},
		{`{ __typename }`, true, false},
	} {
		doc, err := gqlparser.LoadQueryWithRules(s, c.query, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		sh := classify(doc.Operations[0].SelectionSet)
		if sh.public != c.public || (c.public && sh.listsProducts != c.listsProducts) {
			t.Errorf("%s: %+v, want public %v, lists products %v", c.query, sh, c.public, c.listsProducts)
		}
	}
}

func TestEntryEncoding(t *testing.T) {
	for _, e := range []*entry{
		{tags: []string{"a", "b\x00c"}, versions: []string{"", "\x01\n\xff"}, valid: true, data: []byte(`{"x":1}`)},
		{tags: []string{"a"}, data: []byte(`{}`)},
		{data: []byte(`{}`), valid: true},
	} {
		got := decode(encode(e))
		if got == nil || got.valid != e.valid || string(got.data) != string(e.data) || len(got.tags) != len(e.tags) {
			t.Fatalf("%+v came back as %+v", e, got)
		}
		for i := range e.tags {
			want := ""
			if e.valid {
				want = e.versions[i]
			}
			if got.tags[i] != e.tags[i] || got.versions[i] != want {
				t.Fatalf("%+v came back as %+v", e, got)
			}
		}
	}
	for _, bad := range []string{"", "\x01", "\x01\x05a", "\x01\x01\x09ab"} {
		if decode([]byte(bad)) != nil {
			t.Errorf("decode(%q) is not nil", bad)
		}
	}
}
