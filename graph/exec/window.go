package exec

import "context"

// Window is what the runtime needs of the loaders' batch window: how many batches it has
// sent so far, each of which was waited for. MarshalList and LaterFields resolve one
// element or field after another while the count stays the same, and the rest
// concurrently once it moves (see lists.go). Package loaders satisfies it.
type Window interface{ Windows() int64 }

type windowKey struct{}

// WithWindow returns ctx carrying w. The loaders put themselves there (loaders.With), so
// that the one context value serves both.
func WithWindow(ctx context.Context, w Window) context.Context {
	return context.WithValue(ctx, windowKey{}, w)
}

// WindowIn returns the window in ctx, nil when there is none: the runtime then does as
// gqlgen does.
func WindowIn(ctx context.Context) Window {
	w, _ := ctx.Value(windowKey{}).(Window)
	return w
}
