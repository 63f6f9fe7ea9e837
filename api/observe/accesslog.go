package observe

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// NewJSONHandler returns the production log handler: slog's JSON handler with secrets
// redacted (RedactSecrets), and beside it the observer's access line (one per operation)
// appended by hand, the same bytes slog writes for it at a fraction of the cost (slog
// formats its float and string slice through json.Marshal, and calls ReplaceAttr for each
// attribute: 4% of a cached read's CPU). Their writes to w are serialised with each other.
func NewJSONHandler(w io.Writer, level slog.Leveler) slog.Handler {
	out := &lockedWriter{w: w}
	return &jsonHandler{Handler: slog.NewJSONHandler(out, &slog.HandlerOptions{Level: level, ReplaceAttr: RedactSecrets}), out: out}
}

// NewBufferedJSONHandler is NewJSONHandler with its access lines gathered and written
// together every interval, or sooner when accessBufferSize bytes wait, as nginx's
// access_log with buffer and flush does: a write(2) of its own for each line was 3% of a
// storefront request's CPU and a tenth of a cached one's. Every other record is written at
// once, after the access lines before it, so that an error is never held back nor seen
// before the requests that preceded it. flush writes what waits and stops the timer: call
// it when the last request has been answered. A process that dies loses at most interval's
// access lines.
func NewBufferedJSONHandler(w io.Writer, level slog.Leveler, interval time.Duration) (h slog.Handler, flush func()) {
	jh := NewJSONHandler(w, level).(*jsonHandler)
	jh.out.buffered = true
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				jh.out.flush()
			case <-stop:
				jh.out.flush()
				return
			}
		}
	}()
	var once sync.Once
	return jh, func() { once.Do(func() { close(stop); <-done }) }
}

// accessBufferSize is how many bytes of access lines wait at most: some 150 lines.
const accessBufferSize = 32 << 10

type jsonHandler struct {
	slog.Handler
	out *lockedWriter
}

// lockedWriter serialises writes to w: slog's handler locks only its own. When buffered it
// holds access lines (writeLine) until flushed or until any other write.
type lockedWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buffered bool
	pending  []byte
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writePending(); err != nil {
		return 0, err
	}
	return l.w.Write(b)
}

// writeLine writes an access line, or keeps it for later when buffered.
func (l *lockedWriter) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.buffered {
		_, _ = l.w.Write(b)
		return
	}
	if len(l.pending)+len(b) > accessBufferSize {
		_ = l.writePending()
	}
	l.pending = append(l.pending, b...)
}

func (l *lockedWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.writePending()
}

// writePending writes the access lines waiting, with l.mu held.
func (l *lockedWriter) writePending() error {
	if len(l.pending) == 0 {
		return nil
	}
	_, err := l.w.Write(l.pending)
	l.pending = l.pending[:0]
	return err
}

// accessLine is the observer's line for one operation.
type accessLine struct {
	level                              slog.Level
	requestID, operation, typ, outcome string
	codes                              []string
	elapsed                            time.Duration
}

// logAccess logs l through h: appended by hand when h is NewJSONHandler's and every string
// of l is plain (JSON writes it as it is), else as a record.
func logAccess(ctx context.Context, h slog.Handler, l *accessLine) {
	if j, ok := h.(*jsonHandler); ok && l.plain() {
		j.writeAccess(l)
		return
	}
	r := slog.NewRecord(time.Now(), l.level, "graphql", 0)
	r.AddAttrs(
		slog.String("request_id", l.requestID),
		slog.String("operation", l.operation),
		slog.String("type", l.typ),
		slog.String("outcome", l.outcome),
		slog.Any("codes", l.codes),
		slog.Float64("duration_ms", l.durationMs()),
	)
	_ = h.Handle(ctx, r)
}

func (l *accessLine) durationMs() float64 { return float64(l.elapsed.Microseconds()) / 1000 }

func (l *accessLine) plain() bool {
	for _, s := range [...]string{l.requestID, l.operation, l.typ, l.outcome} {
		if !plain(s) {
			return false
		}
	}
	for _, s := range l.codes {
		if !plain(s) {
			return false
		}
	}
	return true
}

// plain reports whether JSON writes s between quotes as it is: printable ASCII without
// quote or backslash.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

var accessBuffers = sync.Pool{New: func() any { return new([]byte) }}

// writeAccess writes l, all of whose strings are plain, as slog's JSON handler writes the
// record logAccess builds: its keys need no redaction, the time is RFC 3339 with
// nanoseconds, the float is written as json.Marshal writes it (for a duration in
// milliseconds: shortest, no exponent).
func (h *jsonHandler) writeAccess(l *accessLine) {
	p := accessBuffers.Get().(*[]byte)
	b := append((*p)[:0], `{"time":"`...)
	b = time.Now().Round(0).AppendFormat(b, time.RFC3339Nano)
	b = append(append(b, `","level":"`...), l.level.String()...)
	b = append(append(b, `","msg":"graphql","request_id":"`...), l.requestID...)
	b = append(append(b, `","operation":"`...), l.operation...)
	b = append(append(b, `","type":"`...), l.typ...)
	b = append(append(b, `","outcome":"`...), l.outcome...)
	b = append(b, `","codes":[`...)
	for i, c := range l.codes {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), c...), '"')
	}
	b = append(b, `],"duration_ms":`...)
	b = strconv.AppendFloat(b, l.durationMs(), 'f', -1, 64)
	b = append(b, "}\n"...)
	h.out.writeLine(b)
	*p = b
	accessBuffers.Put(p)
}
