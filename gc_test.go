package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercent is the collector's current GOGC.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// awaitGCPercent collects until the tuner, which runs after a collection, has set a GOGC
// that want accepts, or a while has passed.
func awaitGCPercent(t *testing.T, within time.Duration, want func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if p := gcPercent(); want(p) || time.Now().After(deadline) {
			return p
		}
	}
}

// A small live heap may grow to the floor before a collection; a large one is collected at
// Go's default pace, so the memory of a process full of subscribers is what it was.
func TestPaceGC(t *testing.T) {
	reset := pacer.stop
	reset() // run, which other tests call, paces the collector too
	t.Cleanup(reset)
	paceGC(128, "50")
	if p := awaitGCPercent(t, 100*time.Millisecond, func(p int) bool { return p != 100 }); p != 100 {
		t.Fatalf("GOGC set by the operator: the pace was changed to %d", p)
	}
	paceGC(128, "")
	if p := awaitGCPercent(t, 5*time.Second, func(p int) bool { return p > 100 }); p <= 100 || p > 1000 {
		t.Fatalf("live heap of a few MiB, floor 128 MiB: GOGC %d, want 101–1000", p)
	}
	live := make([]byte, 100<<20)
	if p := awaitGCPercent(t, 5*time.Second, func(p int) bool { return p == 100 }); p != 100 {
		t.Fatalf("live heap of 100 MiB, floor 128 MiB: GOGC %d, want Go's default 100", p)
	}
	runtime.KeepAlive(live)
}
