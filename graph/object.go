package graph

import (
	"context"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// marshalObject stands for the field set an object's function in the generated executor
// returns (see internal/tuneexec). gqlgen's FieldSet writes itself through an iterator that
// copies every CollectedField to the heap and a map of the aliases it wrote, two allocations
// a field and one an object, which a page of products repeats for each of its objects. An
// object without deferred fields is written here from the same fields and values instead;
// one with them keeps its FieldSet, which its @defer views read.
func marshalObject(out *graphql.FieldSet, fields []graphql.CollectedField, defers int) graphql.Marshaler {
	if defers > 0 {
		return out
	}
	return &object{fields: fields, Values: out.Values}
}

// object is an object's fields and their values, written as one JSON object.
type object struct {
	fields []graphql.CollectedField
	Values []graphql.Marshaler
}

// plainObject stands for the FieldSet in the function of an object whose fields are all
// plain leaves (a Money; see internal/tuneexec), with what that function reads of it:
// Values, Invalids and Dispatch. Such fields are never resolved concurrently or deferred,
// so the object needs none of the FieldSet's machinery, and its fields and values take one
// allocation instead of three.
type plainObject struct {
	object
	Invalids uint32
	inline   [4]graphql.Marshaler
}

// newPlainObject stands for graphql.NewFieldSet in a plain object's function.
func newPlainObject(fields []graphql.CollectedField) *plainObject {
	o := &plainObject{object: object{fields: fields}}
	if len(fields) <= len(o.inline) {
		o.Values = o.inline[:len(fields):len(fields)]
	} else {
		o.Values = make([]graphql.Marshaler, len(fields))
	}
	return o
}

// Dispatch resolves nothing: a plain object has no concurrent fields.
func (*plainObject) Dispatch(context.Context) {}

func (o *object) MarshalGQL(w io.Writer) {
	_, _ = io.WriteString(w, "{")
	for i := range o.fields {
		alias := o.fields[i].Alias
		if o.written(i, alias) {
			continue // as FieldSet: an alias is written once
		}
		if i > 0 {
			_, _ = io.WriteString(w, ",")
		}
		// A GraphQL name needs no escaping: [_A-Za-z][_0-9A-Za-z]*.
		_, _ = io.WriteString(w, `"`)
		_, _ = io.WriteString(w, alias)
		_, _ = io.WriteString(w, `":`)
		o.Values[i].MarshalGQL(w)
	}
	_, _ = io.WriteString(w, "}")
}

// written reports whether a field before i has alias. CollectFields merges the fields of
// one alias, so this is a guard that FieldSet keeps too, over a handful of fields.
func (o *object) written(i int, alias string) bool {
	for j := range i {
		if o.fields[j].Alias == alias {
			return true
		}
	}
	return false
}

// plainSelections reports whether sel holds fields only: no fragment, so no @defer, which
// the spec allows on fragments alone. A plain object's field is then marshaled without a
// field context of its own (see internal/tuneexec): its fields are plain leaves, which
// never report an error whose path would need it.
func plainSelections(sel ast.SelectionSet) bool {
	for _, s := range sel {
		if _, ok := s.(*ast.Field); !ok {
			return false
		}
	}
	return true
}
