package main

import (
	"go/types"
	"strings"
	"text/template"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
)

// shapes tells the templates which fields and objects of the schema the runtime's faster
// paths apply to. Each test reads what gqlgen's data says of a field or type, so that it
// holds for any schema: a new relation, type or root field falls on gqlgen's path unless
// it has the shape.
type shapes struct {
	data    *codegen.Data
	objects map[string]*codegen.Object
}

func newShapes(d *codegen.Data) *shapes {
	s := &shapes{data: d, objects: map[string]*codegen.Object{}}
	for _, o := range d.Objects {
		s.objects[o.Name] = o
	}
	return s
}

func (s *shapes) funcs() template.FuncMap {
	return template.FuncMap{
		"plainLeaf":          s.plainLeaf,
		"leafValue":          leafValue,
		"plainObjectField":   s.plainObjectField,
		"timeField":          s.timeField,
		"enumNames":          enumNames,
		"batchedObjectField": s.batchedObjectField,
		"batchedField":       s.batchedField,
		"writtenPlainObject": s.writtenPlainObject,
		"writtenObjects":     s.writtenObjects,
		"leafWrite":          s.leafWrite,
		"byValueObject":      byValueObject,
		"batchedObjects":     s.batchedObjects,
		"plainFieldNames":    s.plainFieldNames,
		"appendsGlobalID":    appendsGlobalID,
	}
}

// simpleField reports whether f reads its value from the object it belongs to (a struct
// field, or a method without context, arguments or error), with no field middleware of
// its own (no directive), into a non-null value type (not a pointer or a list). Such a
// field can fail in no way that needs its own field context: the field's path in an
// error, the field middleware and its recorded result are all gqlgen's ResolveField adds,
// and the service installs no field middleware (api.NewGraphQL refuses a
// FieldInterceptor). A panic still ends in the nearest enclosing field's recover.
func (s *shapes) simpleField(f *codegen.Field) bool {
	if f.Object.Root || f.IsResolver || f.IsBatch() || f.IsConcurrent() || f.Stream || f.TypeReference.IsRoot {
		return false
	}
	if f.HasDirectives() || len(s.data.AllDirectives.LocationDirectives("FIELD")) > 0 || s.data.Config.OmitPanicHandler {
		return false
	}
	if f.ResolveFieldFunc() != "ResolveField" || f.GoReceiverName != "obj" || f.HasHaser || f.VOkFunc {
		return false
	}
	switch {
	case f.IsVariable():
	case f.IsMethod() && f.NoErr && !f.MethodHasContext && len(f.Args) == 0:
	default:
		return false
	}
	t := f.TypeReference
	return t.GQL.NonNull && valueType(t.GO)
}

// leafValue is the expression a simple field's value is read with.
func leafValue(f *codegen.Field) string {
	if f.IsMethod() {
		return f.GoReceiverName + "." + f.GoFieldName + "()"
	}
	return f.GoReceiverName + "." + f.GoFieldName
}

// plainLeaf reports whether f is a plain leaf: a simple field of a scalar or enum whose
// marshaler never yields null (one of gqlgen's scalar marshalers, or an enum's name
// table; not Time, which is null for the zero time), so that the null check, the one
// place its marshal function reads the field context, cannot fire. It is marshaled at
// once, without ResolveField's field context, closures and boxing.
func (s *shapes) plainLeaf(f *codegen.Field) bool {
	return s.simpleField(f) && neverNull(f.TypeReference)
}

// neverNullMarshalers are gqlgen's marshalers that never return graphql.Null.
var neverNullMarshalers = map[string]bool{
	"MarshalString": true, "MarshalID": true, "MarshalInt": true, "MarshalInt32": true,
	"MarshalInt64": true, "MarshalBoolean": true, "MarshalFloat": true,
}

func neverNull(t *config.TypeReference) bool {
	m := t.Marshaler
	return t.GQL.NonNull && valueType(t.GO) && !t.IsNilable() && !t.IsMarshaler && !t.IsContext &&
		m != nil && m.Pkg() != nil && m.Pkg().Path() == "github.com/99designs/gqlgen/graphql" && neverNullMarshalers[m.Name()] &&
		t.CastType == nil && !t.IsTargetNilable()
}

// timeField reports whether f is a simple field that is a struct field holding a non-null
// time.Time marshaled by graphql.MarshalTime (an order event's at): a time that is not zero
// is written from the field's address (exec.MarshalTimeField); the zero time, which gqlgen
// marshals to null and reports, still goes through ResolveField.
func (s *shapes) timeField(f *codegen.Field) bool {
	t := f.TypeReference
	return s.simpleField(f) && f.IsVariable() && gqlgenMarshaler(t, "MarshalTime") && t.GO.String() == "time.Time" &&
		!t.IsNilable() && !t.IsMarshaler && !t.IsContext && t.CastType == nil && !t.IsTargetNilable()
}

// enumNames reports whether t is an enum held by value whose names are marshaled by
// graphql.MarshalString: its marshal function takes each name's marshaler from a table made
// once (exec.EnumMarshalers).
func enumNames(t *config.TypeReference) bool {
	return t.HasEnumValues() && !t.IsSlice() && !t.IsNilable() && !t.IsTargetNilable() && !t.IsContext &&
		gqlgenMarshaler(t, "MarshalString")
}

// gqlgenMarshaler reports whether t is marshaled by gqlgen's marshaler name.
func gqlgenMarshaler(t *config.TypeReference, name string) bool {
	m := t.Marshaler
	return m != nil && m.Pkg() != nil && m.Pkg().Path() == "github.com/99designs/gqlgen/graphql" && m.Name() == name
}

// byValueObject reports whether t is a non-null object held by value, whose marshal
// function hands the object's function its address.
func byValueObject(t *config.TypeReference) bool {
	return t.GQL.NonNull && valueType(t.GO) && !t.IsNilable() && !t.IsMarshaler && t.Marshaler == nil && !t.IsRoot &&
		t.Definition != nil && t.Definition.Kind == "OBJECT"
}

// pointerObject reports whether t is a non-null object held by pointer.
func pointerObject(t *config.TypeReference) bool {
	return t.GQL.NonNull && t.GQL.Elem == nil && t.IsPtr() && !t.IsPtrToPtr() && !t.IsPtrToSlice() && !t.IsPtrToIntf() &&
		!t.IsMarshaler && t.Marshaler == nil && !t.IsRoot && t.Definition != nil && t.Definition.Kind == "OBJECT"
}

// valueType reports whether a Go type is held by value: not a pointer, slice or array.
func valueType(t types.Type) bool {
	switch types.Unalias(t).(type) {
	case *types.Pointer, *types.Slice, *types.Array:
		return false
	}
	return true
}

// plainObject reports whether every field of the object is a plain leaf (a Money): none
// can fail, wait or be deferred but through a fragment.
func (s *shapes) plainObject(o *codegen.Object) bool {
	if o == nil || o.Root || len(o.Fields) == 0 || o.IsConcurrent() {
		return false
	}
	for _, f := range o.Fields {
		if !s.plainLeaf(f) {
			return false
		}
	}
	return true
}

// plainObjectField reports whether f is a simple field holding a plain object by value
// (a price): it needs no field context when its selection holds no fragment, the only
// place a @defer could sit.
func (s *shapes) plainObjectField(f *codegen.Field) bool {
	t := f.TypeReference
	return s.simpleField(f) && byValueObject(t) && s.plainObject(s.objects[t.Definition.Name])
}

// batchedObjectField reports whether f is a batch field whose value is a non-null object
// held by pointer (an order's customer): for the parents after the first, once the list's
// batch is resolved, it needs no field context when it asks for plain leaves alone.
func (s *shapes) batchedObjectField(f *codegen.Field) bool {
	return !f.Object.Root && f.IsBatch() && !f.HasDirectives() && len(s.data.AllDirectives.LocationDirectives("FIELD")) == 0 &&
		f.ResolveFieldFunc() == "ResolveField" && pointerObject(f.TypeReference) && s.objects[f.TypeReference.Definition.Name] != nil
}

// leafWrite is the statement that writes the plain leaf f of obj to w, "" when f is none
// or its type has no writer of its own: Int, String, Boolean, and a global ID its object
// appends.
func (s *shapes) leafWrite(f *codegen.Field) string {
	if !s.plainLeaf(f) {
		return ""
	}
	v := leafValue(f)
	switch f.TypeReference.MarshalFunc() {
	case "marshalNInt2int":
		return "exec.WriteInt(w, " + v + ")"
	case "marshalNString2string":
		return "exec.WriteString(w, " + v + ")"
	case "marshalNBoolean2bool":
		return "exec.WriteBoolean(w, " + v + ")"
	case "marshalNID2string":
		if v == "obj.GlobalID()" && appendsGlobalID(f.Object) {
			return "exec.MarshalGlobalID(obj).MarshalGQL(w)"
		}
	}
	return ""
}

// writtenPlainObject reports whether f holds a plain object by value (plainObjectField)
// whose every field has a writer (leafWrite): in a selection without a fragment it is one
// exec.PlainObject, written from its value by the object's write function.
func (s *shapes) writtenPlainObject(f *codegen.Field) bool {
	if !s.plainObjectField(f) {
		return false
	}
	return s.writtenObject(s.objects[f.TypeReference.Definition.Name])
}

func (s *shapes) writtenObject(o *codegen.Object) bool {
	for _, f := range o.Fields {
		if s.leafWrite(f) == "" {
			return false
		}
	}
	return true
}

// writtenObjects are the objects some writtenPlainObject field holds, in the order of their
// first such field: each gets a write function.
func (s *shapes) writtenObjects() []*codegen.Object {
	var out []*codegen.Object
	seen := map[string]bool{}
	for _, o := range s.data.Objects {
		for _, f := range o.Fields {
			if name := f.TypeReference.Definition.Name; s.writtenPlainObject(f) && !seen[name] {
				seen[name] = true
				out = append(out, s.objects[name])
			}
		}
	}
	return out
}

// batchedField reports whether f is a batch field without arguments or directives (an
// order's items, an item's product): for the parents after the first, once the list's
// batch is resolved, it is marshaled in a field context of its own without
// ResolveField's closures, boxing and middleware chain (exec.BatchedValue).
func (s *shapes) batchedField(f *codegen.Field) bool {
	return !f.Object.Root && f.IsBatch() && !f.HasDirectives() && len(s.data.AllDirectives.LocationDirectives("FIELD")) == 0 &&
		f.ResolveFieldFunc() == "ResolveField" && len(f.Args) == 0 && !f.Stream && !f.TypeReference.IsRoot &&
		!s.data.Config.OmitPanicHandler
}

// batchedObjects are the objects some batched object field holds, in the order of their
// first such field: each gets a table of its plain leaf fields.
func (s *shapes) batchedObjects() []*codegen.Object {
	var out []*codegen.Object
	seen := map[string]bool{}
	for _, o := range s.data.Objects {
		for _, f := range o.Fields {
			if name := f.TypeReference.Definition.Name; s.batchedObjectField(f) && !seen[name] {
				seen[name] = true
				out = append(out, s.objects[name])
			}
		}
	}
	return out
}

// plainFieldNames is the object's plain leaf fields and __typename, as Go map entries.
func (s *shapes) plainFieldNames(o *codegen.Object) string {
	names := []string{`"__typename": true`}
	for _, f := range o.Fields {
		if s.plainLeaf(f) {
			names = append(names, `"`+f.Name+`": true`)
		}
	}
	return strings.Join(names, ", ")
}

// appendsGlobalID reports whether the object's Go type has AppendGlobalID([]byte) []byte,
// through which exec.MarshalGlobalID writes its ID while the response is written; a type
// with a GlobalID method alone has it marshaled as gqlgen does.
func appendsGlobalID(o *codegen.Object) bool {
	sel := types.NewMethodSet(types.NewPointer(o.Type)).Lookup(nil, "AppendGlobalID")
	if sel == nil {
		return false
	}
	sig, ok := sel.Type().(*types.Signature)
	if !ok || sig.Params().Len() != 1 || sig.Results().Len() != 1 {
		return false
	}
	in, ok := sig.Params().At(0).Type().(*types.Slice)
	out, ok2 := sig.Results().At(0).Type().(*types.Slice)
	return ok && ok2 && types.Identical(in, out) && types.Identical(in.Elem(), types.Typ[types.Byte])
}
