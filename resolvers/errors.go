package resolvers

import (
	"github.com/shop/api/graph/model"
	"github.com/shop/api/store"
)

// userErrorCodes maps the store's business codes to the API's; other codes are top-level errors.
var userErrorCodes = map[store.Code]model.UserErrorCode{
	store.CodeInvalid:             model.UserErrorCodeInvalidInput,
	store.CodeEmailTaken:          model.UserErrorCodeEmailTaken,
	store.CodeInvalidCredentials:  model.UserErrorCodeInvalidCredentials,
	store.CodeNotFound:            model.UserErrorCodeNotFound,
	store.CodeInsufficientStock:   model.UserErrorCodeInsufficientStock,
	store.CodeInvalidTransition:   model.UserErrorCodeInvalidTransition,
	store.CodeIdempotencyConflict: model.UserErrorCodeIdempotencyConflict,
	store.CodeStockChanged:        model.UserErrorCodeStockChanged,
}

// userErrors splits a mutation's error: business and validation failures become userErrors,
// anything else (authentication, authorization, internal) is returned as a top-level error.
// A NOT_FOUND without a field is reported on notFoundField.
func userErrors(err error, notFoundField ...string) ([]model.UserError, error) {
	coded := store.CodedErrors(err)
	if len(coded) == 0 {
		return nil, err
	}
	out := make([]model.UserError, 0, len(coded))
	for _, e := range coded {
		code, ok := userErrorCodes[e.Code]
		if !ok {
			return nil, err
		}
		field := e.Field
		if e.Code == store.CodeNotFound && len(field) == 0 {
			field = notFoundField
		}
		out = append(out, model.UserError{Field: field, Message: e.Message, Code: code})
	}
	return out, nil
}

func notFound() error { return &store.Error{Code: store.CodeNotFound, Message: "not found"} }

func forbidden(msg string) error { return &store.Error{Code: store.CodeForbidden, Message: msg} }

func unauthenticated() error {
	return &store.Error{Code: store.CodeUnauthenticated, Message: "sign in first"}
}
