package observe

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

// The access line appended by hand is the line slog's JSON handler writes for the same
// record, but for the time (each is stamped when written): a log pipeline cannot tell them
// apart. Lines with strings JSON escapes go through slog (logAccess).
func TestAccessLineIsSlogs(t *testing.T) {
	stamp := regexp.MustCompile(`^\{"time":"([^"]+)",`)
	for _, l := range []accessLine{
		{level: slog.LevelInfo, requestID: "0123456789abcdef", operation: "Storefront", typ: "query", outcome: "ok",
			codes: []string{}, elapsed: 1234567 * time.Nanosecond},
		{level: slog.LevelWarn, requestID: "req-1", operation: "", typ: "none", outcome: "failed",
			codes: []string{"GRAPHQL_PARSE_FAILED", "NONE"}, elapsed: 0},
		{level: slog.LevelWarn, requestID: "r", operation: "<&>", typ: "mutation", outcome: "error",
			codes: []string{"RATE_LIMITED"}, elapsed: 15 * time.Second},
		{level: slog.LevelWarn, requestID: "r", operation: "a\"b\\c\n\u2028é", typ: "query", outcome: "error",
			codes: []string{"x\ty"}, elapsed: time.Microsecond},
	} {
		var fast, slow bytes.Buffer
		h := NewJSONHandler(&fast, nil)
		if l.plain() {
			h.(*jsonHandler).writeAccess(&l)
		} else {
			logAccess(context.Background(), h, &l)
		}
		logAccess(context.Background(), slog.NewJSONHandler(&slow, &slog.HandlerOptions{ReplaceAttr: RedactSecrets}), &l)
		m := stamp.FindSubmatch(fast.Bytes())
		if m == nil {
			t.Fatalf("no time in %s", fast.Bytes())
		}
		if _, err := time.Parse(time.RFC3339Nano, string(m[1])); err != nil {
			t.Errorf("time %s: %v", m[1], err)
		}
		got, want := stamp.ReplaceAll(fast.Bytes(), nil), stamp.ReplaceAll(slow.Bytes(), nil)
		if !bytes.Equal(got, want) {
			t.Errorf("access line\n got %s\nwant %s", got, want)
		}
		if l.plain() != (l.operation == "Storefront" || l.operation == "" || l.operation == "<&>") {
			t.Errorf("%q: plain() = %v", l.operation, l.plain())
		}
	}
}

// writes records each Write its writer is given.
type writes struct {
	mu    sync.Mutex
	calls [][]byte
}

func (w *writes) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, bytes.Clone(b))
	return len(b), nil
}

func (w *writes) get() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// A buffered handler holds access lines back and writes them together: when its interval
// is up, when any other record is written (after them, in order), when they would pass
// accessBufferSize, and on flush.
func TestBufferedAccessLines(t *testing.T) {
	line := accessLine{level: slog.LevelInfo, requestID: "0123456789abcdef", typ: "query", outcome: "ok", codes: []string{}}
	var w writes
	h, flush := NewBufferedJSONHandler(&w, nil, time.Hour)
	for range 3 {
		logAccess(context.Background(), h, &line)
	}
	if got := w.get(); len(got) != 0 {
		t.Fatalf("%d writes before anything but access lines, want none", len(got))
	}
	slog.New(h).Error("boom")
	got := w.get()
	if len(got) != 2 || bytes.Count(got[0], []byte(`"msg":"graphql"`)) != 3 || !bytes.Contains(got[1], []byte(`"msg":"boom"`)) {
		t.Fatalf("after an error record: writes %q, want the 3 access lines then the error", got)
	}
	for range 1000 {
		logAccess(context.Background(), h, &line)
	}
	got = w.get()
	if len(got) < 4 {
		t.Fatalf("%d writes after 1,000 access lines, want those past %d bytes written", len(got), accessBufferSize)
	}
	for _, b := range got {
		if len(b) > accessBufferSize {
			t.Fatalf("a write of %d bytes, above %d", len(b), accessBufferSize)
		}
	}
	flush()
	flush() // a second call does nothing
	var lines int
	for _, b := range w.get() {
		lines += bytes.Count(b, []byte(`"msg":"graphql"`))
	}
	if lines != 1003 {
		t.Fatalf("%d access lines written after flush, want 1003", lines)
	}

	var timed writes
	h, flush = NewBufferedJSONHandler(&timed, nil, 10*time.Millisecond)
	defer flush()
	logAccess(context.Background(), h, &line)
	deadline := time.Now().Add(5 * time.Second)
	for len(timed.get()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("an access line still waits 5 s after a 10 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
