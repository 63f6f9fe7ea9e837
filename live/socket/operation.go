package socket

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/live/delivery"
)

// operation is one operation a client started on a socket. A query or mutation, or a
// subscription whose set-up failed, is answered by the set-up worker. A live subscription
// parks nothing: the broker calls Ready after each event it put in the subscription's
// channel, and only then is gqlgen's response handler run, on an event worker, where the
// receive it does cannot block.
//
// An operation runs in its socket's context: no cancellable context of its own, which with
// the hooks on it would cost every watching phone a KiB. Ending it stops its subscription
// (Subscribed's stop); a set-up still reading the database ends with the socket.
type operation struct {
	s    *Sockets
	sock *socket
	id   string

	mu         sync.Mutex
	handler    graphql.ResponseHandler
	handlerCtx context.Context
	stopSub    func() // ends the live subscription; nil until Subscribed
	subscribed bool
	pending    int  // Ready calls not yet answered by a run of the handler
	scheduled  bool // a drain is queued or running
	finished   bool
}

var _ delivery.Listener = (*operation)(nil)

// setUp parses and validates the operation and dispatches it; for a subscription, that runs
// its resolver, which registers with the broker and replays from the database.
func (op *operation) setUp(payload json.RawMessage) {
	s := op.sock
	ctx := graphql.StartOperationTrace(s.context())
	start := graphql.Now()
	params := &graphql.RawParams{}
	if err := json.Unmarshal(payload, params); err != nil {
		op.fail(&gqlerror.Error{Message: "invalid json"})
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	params.Headers = s.headers
	rc, errs := s.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := s.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			op.fail(resp.Errors...)
			return
		}
		op.respond(&graphql.Response{Errors: errs})
		op.finish()
		return
	}
	ctx = delivery.WithListener(graphql.WithOperationContext(ctx, rc), op)
	var handler graphql.ResponseHandler
	if !op.guard(rc, ctx, func() { handler, ctx = s.exec.DispatchOperation(ctx, rc) }) {
		return
	}
	op.mu.Lock()
	live := op.subscribed && rc.Operation != nil && rc.Operation.Operation == ast.Subscription
	if live {
		op.handler, op.handlerCtx = handler, ctx
		op.scheduleLocked()
		op.mu.Unlock()
		return
	}
	op.mu.Unlock()
	// A query, a mutation, or a subscription that failed to set up: its responses are
	// ready now.
	for {
		var resp *graphql.Response
		if !op.guard(rc, ctx, func() { resp = handler(ctx) }) {
			return
		}
		if resp == nil {
			break
		}
		op.respond(resp)
	}
	op.finish()
}

// Subscribed implements delivery.Listener.
func (op *operation) Subscribed(stop func()) {
	op.mu.Lock()
	if op.finished { // the client or the socket ended it during the set-up
		op.mu.Unlock()
		stop()
		return
	}
	op.subscribed, op.stopSub = true, stop
	op.mu.Unlock()
}

// Ready implements delivery.Listener: one more run of the handler will not block.
func (op *operation) Ready() {
	op.mu.Lock()
	op.pending++
	op.scheduleLocked()
	op.mu.Unlock()
}

// Fail ends the operation with err (delivery.Fail): a subscription whose caller's budget is
// spent.
func (op *operation) Fail(err error) {
	var gqlErr *gqlerror.Error
	if !errors.As(err, &gqlErr) {
		gqlErr = &gqlerror.Error{Message: "internal system error"}
	}
	op.fail(gqlErr)
}

// Overflow implements delivery.Listener: the subscriber could not keep up; its socket is
// closed with 1013.
func (op *operation) Overflow() {
	op.sock.tooSlow()
}

func (op *operation) scheduleLocked() {
	if op.handler == nil || op.scheduled || op.finished || op.pending == 0 {
		return
	}
	op.scheduled = true
	op.s.events.submit(op.drain)
}

// drain runs the handler once per pending event, in order: one drain at a time per operation.
func (op *operation) drain() {
	for {
		op.mu.Lock()
		if op.pending == 0 || op.finished {
			op.scheduled = false
			op.mu.Unlock()
			return
		}
		op.pending--
		handler, ctx := op.handler, op.handlerCtx
		op.mu.Unlock()
		var resp *graphql.Response
		if !op.guard(graphql.GetOperationContext(ctx), ctx, func() { resp = handler(ctx) }) {
			return
		}
		if resp == nil { // the channel closed: the subscription is over
			op.finish()
			return
		}
		op.respond(resp)
	}
}

// guard runs f, turning a panic into the operation's error.
func (op *operation) guard(rc *graphql.OperationContext, ctx context.Context, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			err := rc.Recover(ctx, r)
			var gqlErr *gqlerror.Error
			if !errors.As(err, &gqlErr) {
				gqlErr = &gqlerror.Error{Message: "internal system error"}
			}
			op.fail(gqlErr)
			ok = false
		}
	}()
	f()
	return true
}

func (op *operation) respond(resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		op.fail(&gqlerror.Error{Message: "internal system error"})
		return
	}
	typ := "next"
	if !op.sock.transportWS {
		typ = "data"
	}
	op.sock.send(message(typ, op.id, b))
}

// end marks the operation over and frees its ID; false when it already was.
func (op *operation) end() bool {
	op.mu.Lock()
	done := op.finished
	op.finished = true
	stop := op.stopSub
	op.stopSub, op.handler, op.handlerCtx = nil, nil, nil
	op.mu.Unlock()
	if done {
		return false
	}
	if stop != nil {
		stop()
	}
	// Free the ID before telling the client, who may reuse it at once.
	op.sock.release(op.id, op)
	return true
}

// finish ends the operation with complete.
func (op *operation) finish() {
	if op.end() {
		op.sock.send(message("complete", op.id, nil))
	}
}

// fail ends the operation with an error message (no complete follows an error).
func (op *operation) fail(errs ...*gqlerror.Error) {
	if !op.end() {
		return
	}
	b, _ := json.Marshal(errs)
	op.sock.send(message("error", op.id, b))
}

// stop ends the operation at the client's request: nothing more is sent for it.
func (op *operation) stop() {
	op.end()
}
