package store

import (
	"errors"
	"strings"
)

// Code classifies an error for the API layer. Codes are stable; messages are for people.
type Code string

// Error codes. The first six classify any error; the rest are business failures a mutation
// reports to its caller as a user error.
const (
	CodeNotFound            Code = "NOT_FOUND"
	CodeInvalid             Code = "INVALID"
	CodeConflict            Code = "CONFLICT"
	CodeForbidden           Code = "FORBIDDEN"
	CodeUnauthenticated     Code = "UNAUTHENTICATED"
	CodeInternal            Code = "INTERNAL"
	CodeEmailTaken          Code = "EMAIL_TAKEN"
	CodeInvalidCredentials  Code = "INVALID_CREDENTIALS"
	CodeInsufficientStock   Code = "INSUFFICIENT_STOCK"
	CodeInvalidTransition   Code = "INVALID_TRANSITION"
	CodeIdempotencyConflict Code = "IDEMPOTENCY_CONFLICT"
	CodeStockChanged        Code = "STOCK_CHANGED"
	// CodePaymentProviderUnavailable is a top-level error: the payment provider could not
	// be reached and nothing was done.
	CodePaymentProviderUnavailable Code = "PAYMENT_PROVIDER_UNAVAILABLE"
)

// Error is an error with a code, and for input errors the path of the input field at fault.
type Error struct {
	Code    Code
	Message string
	Field   []string
}

func (e *Error) Error() string {
	if len(e.Field) > 0 {
		return strings.Join(e.Field, ".") + ": " + e.Message
	}
	return e.Message
}

// Errorf-style constructors keep call sites short.
func newError(code Code, msg string, field ...string) *Error {
	return &Error{Code: code, Message: msg, Field: field}
}

// Errors is several coded errors reported together, e.g. every short line of an order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// err returns nil for an empty list, so callers can write `return errs.err()`.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// ErrorCode returns the code of err: that of the first coded error in its chain, or
// CodeInternal for anything else. A nil error has no code.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var es Errors
	if errors.As(err, &es) && len(es) > 0 {
		return es[0].Code
	}
	return CodeInternal
}

// CodedErrors returns the coded errors in err's chain, flattening Errors; nil when there are none.
func CodedErrors(err error) []*Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}
