package delivery

import "context"

// A Listener is how a transport that drives subscriptions from a worker pool (instead of a
// goroutine parked on each subscription's channel) follows a subscription set up with a
// context carrying it (WithListener). The broker calls it without holding any lock, and
// its methods must not block.
type Listener interface {
	// Subscribed is called once the subscription is set up, just before its channel is
	// returned to the resolver: every value in that channel, and its closing, is
	// announced by Ready (also those that came before Subscribed). A set-up that fails
	// never calls it: the resolver's error is then the operation's one result.
	//
	// stop ends the subscription: the broker forgets it and closes its channel. A
	// subscription with a listener is not tied to its context (a cancellable context per
	// operation, and the broker's hook on it, are a fifth of a watching phone's memory):
	// the transport calls stop when the operation ends, however it ends. It may call it
	// more than once.
	Subscribed(stop func())
	// Ready is called once for every event put into the subscription's channel, after it
	// is there, and once more after the channel is closed: a receive after each Ready
	// never blocks.
	Ready()
	// Overflow is called once when the subscriber could not keep up (its buffer was full)
	// and was cut off; the transport ends the connection (the client reconnects and
	// resumes with `after`). The channel is closed when the subscription's context ends.
	Overflow()
}

type listenerKey struct{}

// WithListener returns ctx carrying l: a subscription set up with it reports to l.
func WithListener(ctx context.Context, l Listener) context.Context {
	return context.WithValue(ctx, listenerKey{}, l)
}

func listenerFrom(ctx context.Context) Listener {
	l, _ := ctx.Value(listenerKey{}).(Listener)
	return l
}

// A failer is a Listener that can end its subscription with an error of its own.
type failer interface {
	Fail(err error)
}

// Fail ends the subscription set up with ctx with err, when its transport can (a Listener
// with a Fail method: the WebSocket's operation), and reports whether it did.
func Fail(ctx context.Context, err error) bool {
	f, ok := listenerFrom(ctx).(failer)
	if ok {
		f.Fail(err)
	}
	return ok
}
