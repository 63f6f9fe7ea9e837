package observe

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

type requestIDKey struct{}

// RequestID returns the request's ID, as set by WithRequestID.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// CarryRequestID returns dst carrying the request ID of src.
func CarryRequestID(dst, src context.Context) context.Context {
	if id := RequestID(src); id != "" {
		return context.WithValue(dst, requestIDKey{}, id)
	}
	return dst
}

// saneRequestID reports whether id matches ^[A-Za-z0-9._-]{1,64}$.
func saneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// WithRequestID gives every request an ID, the caller's X-Request-Id when it is sane, and
// returns it in the X-Request-Id response header so a client can quote it.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			// Unique, not secret: the runtime's generator (ChaCha8, seeded by the OS) is
			// enough and costs no call into the kernel's.
			var b [8]byte
			var x [16]byte
			binary.LittleEndian.PutUint64(b[:], rand.Uint64())
			hex.Encode(x[:], b[:])
			id = string(x[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}
