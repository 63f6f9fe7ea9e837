package socket

import (
	"sync"
	"time"
)

// wheel pings every socket once per interval from one goroutine: sockets are spread over
// slots, and each tick visits the next slot. A socket costs a map entry, not a timer, and
// the pings of many sockets are spread evenly over the interval instead of bunching up.
type wheel struct {
	mu    sync.Mutex
	slots []map[*socket]struct{}
	cur   int
	beat  func(*socket)
	done  chan struct{}
	wg    sync.WaitGroup
}

func newWheel(interval time.Duration, beat func(*socket)) *wheel {
	n := int(min(64, max(1, interval/time.Millisecond)))
	w := &wheel{slots: make([]map[*socket]struct{}, n), beat: beat, done: make(chan struct{})}
	for i := range w.slots {
		w.slots[i] = map[*socket]struct{}{}
	}
	w.wg.Add(1)
	go w.run(interval / time.Duration(n))
	return w
}

// add puts s in the slot visited last, a whole interval from now.
func (w *wheel) add(s *socket) {
	w.mu.Lock()
	s.slot = (w.cur + len(w.slots) - 1) % len(w.slots)
	w.slots[s.slot][s] = struct{}{}
	w.mu.Unlock()
}

func (w *wheel) remove(s *socket) {
	w.mu.Lock()
	if s.slot >= 0 {
		delete(w.slots[s.slot], s)
		s.slot = -1
	}
	w.mu.Unlock()
}

func (w *wheel) run(tick time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	var due []*socket
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		w.mu.Lock()
		w.cur = (w.cur + 1) % len(w.slots)
		due = due[:0]
		for s := range w.slots[w.cur] {
			due = append(due, s)
		}
		w.mu.Unlock()
		for _, s := range due {
			w.beat(s)
		}
		clear(due)
	}
}

func (w *wheel) stop() {
	close(w.done)
	w.wg.Wait()
}
