package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/guard"
	"github.com/shop/api/api/observe"
	"github.com/shop/api/store"
)

var topLevelCodes = map[store.Code]string{
	store.CodeUnauthenticated: guard.CodeUnauthenticated,
	store.CodeForbidden:       guard.CodeForbidden,
	store.CodeNotFound:        guard.CodeNotFound,
	store.CodeInvalid:         guard.CodeBadUserInput,
	// Not a userError: the same payOrder may succeed when sent again.
	store.CodePaymentProviderUnavailable: guard.CodePaymentProviderUnavailable,
}

// ErrorPresenter gives every error the contract's extensions.code. Errors gqlgen already
// coded (parse, validation, complexity) pass unchanged; internal errors are logged with the
// request ID and shown to the client without their cause.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		if _, ok := gerr.Extensions["code"]; ok {
			return gerr
		}
		var ge *gqlerror.Error
		if errors.As(err, &ge) && ge.Err == nil {
			// Raised by the executor itself about the request (e.g. an argument it could not
			// coerce): the message is meant for the client.
			gerr.Extensions = map[string]any{"code": guard.CodeBadUserInput}
			return gerr
		}
		code := store.ErrorCode(err)
		if c, ok := topLevelCodes[code]; ok {
			gerr.Message = coded(err).Message
			gerr.Extensions = map[string]any{"code": c}
			if e := coded(err); len(e.Field) > 0 {
				gerr.Extensions["field"] = e.Field
			}
			return gerr
		}
		log.ErrorContext(ctx, "internal error", "err", err, "request_id", observe.RequestID(ctx), "path", gerr.Path.String())
		gerr.Message = "internal server error"
		if store.Unavailable(err) {
			gerr.Message = "service temporarily unavailable; retry later"
		}
		gerr.Extensions = map[string]any{"code": guard.CodeInternal, "requestId": observe.RequestID(ctx)}
		return gerr
	}
}

func coded(err error) *store.Error {
	if es := store.CodedErrors(err); len(es) > 0 {
		return es[0]
	}
	return &store.Error{Code: store.CodeInternal, Message: err.Error()}
}

// Recover turns a resolver's panic into a masked internal error, logged with its request ID.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "request_id", observe.RequestID(ctx), "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	}
}
