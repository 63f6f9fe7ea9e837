package resolvers

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Kinds of global IDs.
const (
	kindUser    = "User"
	kindProduct = "Product"
	kindOrder   = "Order"
	kindEvent   = "OrderStatusEvent"
)

// globalID returns the opaque global ID of an object of this kind.
func globalID(kind string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + strconv.FormatInt(id, 10)))
}

// parseGlobalID returns the kind and database ID of a global ID; ok is false when it is malformed.
func parseGlobalID(gid string) (kind string, id int64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(gid)
	if err != nil {
		return "", 0, false
	}
	kind, num, found := strings.Cut(string(b), ":")
	if !found {
		return "", 0, false
	}
	id, err = strconv.ParseInt(num, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != num {
		return "", 0, false
	}
	// The decoder skips newlines and ignores unused trailing bits, so several strings decode
	// alike; only the one globalID gives is the object's ID, keeping IDs unique.
	if globalID(kind, id) != gid {
		return "", 0, false
	}
	return kind, id, true
}

// localID returns the database ID in gid when it is an ID of this kind, and 0 (which matches
// nothing) otherwise, so a malformed ID behaves exactly like an unknown one.
func localID(kind, gid string) int64 {
	k, id, ok := parseGlobalID(gid)
	if !ok || k != kind {
		return 0
	}
	return id
}
