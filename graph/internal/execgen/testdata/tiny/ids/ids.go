// Package ids holds the tiny schema's hand-written models: one with a GlobalID method
// alone, one that appends its ID too (exec.MarshalGlobalID).
package ids

import "strconv"

type Person struct {
	ID   int
	Name string
}

func (p Person) GlobalID() string { return "Person:" + strconv.Itoa(p.ID) }

type Review struct {
	ID    int
	Stars int
	Text  *string
}

func (r *Review) GlobalID() string { return string(r.AppendGlobalID(nil)) }

func (r *Review) AppendGlobalID(b []byte) []byte {
	return strconv.AppendInt(append(b, "Review:"...), int64(r.ID), 10)
}

// IsNode and GetID make Person the model's Node, as modelgen's interfaces ask.
func (Person) IsNode()         {}
func (p Person) GetID() string { return p.GlobalID() }
