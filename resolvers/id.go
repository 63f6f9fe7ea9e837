package resolvers

import "github.com/shop/api/store"

// Kinds of global IDs.
const (
	kindUser    = store.KindUser
	kindProduct = store.KindProduct
	kindOrder   = store.KindOrder
	kindEvent   = store.KindEvent
	kindPayment = store.KindPayment
)

// globalID returns the opaque global ID of an object of this kind.
func globalID(kind string, id int64) string { return store.GlobalID(kind, id) }

// parseGlobalID returns the kind and database ID of a global ID; ok is false when it is malformed.
func parseGlobalID(gid string) (kind string, id int64, ok bool) { return store.ParseGlobalID(gid) }

// localID returns the database ID in gid when it is an ID of this kind, and 0 (which matches
// nothing) otherwise, so a malformed ID behaves exactly like an unknown one.
func localID(kind, gid string) int64 {
	k, id, ok := parseGlobalID(gid)
	if !ok || k != kind {
		return 0
	}
	return id
}
