package socket

import "sync"

// pool runs jobs on a fixed number of goroutines, in the order they were submitted. Its
// queue is unbounded so that submitting never blocks the event loop or the broker: what
// bounds the work is the number of sockets and their send buffers, not this queue.
type pool struct {
	mu      sync.Mutex
	wake    *sync.Cond
	queue   []func()
	stopped bool
	wg      sync.WaitGroup
}

func newPool(workers int) *pool {
	p := &pool{}
	p.wake = sync.NewCond(&p.mu)
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

// submit queues job; after stop it is dropped.
func (p *pool) submit(job func()) {
	p.mu.Lock()
	if !p.stopped {
		p.queue = append(p.queue, job)
		p.wake.Signal()
	}
	p.mu.Unlock()
}

func (p *pool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.stopped {
			p.wake.Wait()
		}
		if p.stopped {
			p.mu.Unlock()
			return
		}
		job := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = nil // let a burst's backing array go
		}
		p.mu.Unlock()
		job()
	}
}

// stop ends the workers once their current jobs return; queued jobs are dropped.
func (p *pool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.queue = nil
	p.wake.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
