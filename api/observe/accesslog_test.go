package observe

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
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
