package socket

import (
	"sync"
	"testing"
)

// A pool with a limit refuses a job beyond it instead of queueing without bound; the queued
// jobs still run, and a freed place takes a job again.
func TestPoolRefusesBeyondItsQueue(t *testing.T) {
	p := newPool(1, 2)
	block, started := make(chan struct{}), make(chan struct{})
	var unblock sync.Once
	defer func() { unblock.Do(func() { close(block) }); p.stop() }()
	ran := make(chan int, 3)
	if !p.submit(func() { close(started); <-block }) {
		t.Fatal("the first job was refused")
	}
	<-started // the worker is busy: what follows queues
	for i := range 2 {
		if !p.submit(func() { ran <- i }) {
			t.Fatalf("job %d refused within the limit", i)
		}
	}
	if p.submit(func() { ran <- 2 }) {
		t.Fatal("a job beyond the queue's limit of 2 was queued")
	}
	unblock.Do(func() { close(block) })
	if a, b := <-ran, <-ran; a != 0 || b != 1 {
		t.Fatalf("queued jobs ran as %d, %d", a, b)
	}
	if !p.submit(func() { ran <- 3 }) {
		t.Fatal("a job was refused by an empty queue")
	}
	if got := <-ran; got != 3 {
		t.Fatalf("ran %d", got)
	}
}
