package store

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Limits of the shop's input, as the API contract states them.
const (
	MaxNameLength    = 200
	MinPasswordLen   = 8
	MaxPasswordBytes = 72 // bcrypt ignores anything longer
	MaxPrice         = 100_000_000
	MaxStock         = 1_000_000
	MaxQuantity      = 1_000
	MaxOrderLines    = 50
	MaxOrderTotal    = 1<<31 - 1 // totals are GraphQL Ints
	MaxNoteLength    = 1_000
	MaxIdempotentKey = 200
	MaxDescription   = 10_000
)

// validator collects input errors, so a caller sees every problem at once.
type validator struct{ errs Errors }

func (v *validator) add(msg string, field ...string) {
	v.errs = append(v.errs, newError(CodeInvalid, msg, field...))
}

func (v *validator) name(s string, field ...string) {
	if n := utf8.RuneCountInString(strings.TrimSpace(s)); n < 1 || n > MaxNameLength {
		v.add(fmt.Sprintf("must be 1 to %d characters", MaxNameLength), field...)
	}
}

func (v *validator) between(n, lo, hi int, field ...string) {
	if n < lo || n > hi {
		v.add(fmt.Sprintf("must be between %d and %d", lo, hi), field...)
	}
}

func (v *validator) maxLen(s string, max int, field ...string) {
	if utf8.RuneCountInString(s) > max {
		v.add(fmt.Sprintf("must be at most %d characters", max), field...)
	}
}

func (v *validator) email(s string, field ...string) {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || len(s) > 254 || !strings.Contains(s[strings.LastIndex(s, "@"):], ".") {
		v.add("must be a valid email address", field...)
	}
}

func (v *validator) password(s string, field ...string) {
	switch {
	case utf8.RuneCountInString(s) < MinPasswordLen:
		v.add(fmt.Sprintf("must be at least %d characters", MinPasswordLen), field...)
	case len(s) > MaxPasswordBytes:
		v.add(fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes), field...)
	}
}

// emailKey is the case-insensitive identity of an email address.
func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
