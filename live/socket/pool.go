package socket

import "sync"

// pool runs jobs on a fixed number of goroutines, in the order they were submitted.
// Submitting never blocks the event loop or the broker: a pool with a limit refuses a job
// beyond it (the set-ups, which any client can start); one without (the events, bounded by
// the subscribers and their buffers) queues it.
type pool struct {
	limit   int // queued jobs at most; 0: no limit
	mu      sync.Mutex
	wake    *sync.Cond
	queue   []func()
	stopped bool
	wg      sync.WaitGroup
}

func newPool(workers, limit int) *pool {
	p := &pool{limit: limit}
	p.wake = sync.NewCond(&p.mu)
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

// submit queues job, and reports false when the queue is full; after stop the job is
// dropped.
func (p *pool) submit(job func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return true
	}
	if p.limit > 0 && len(p.queue) >= p.limit {
		return false
	}
	p.queue = append(p.queue, job)
	p.wake.Signal()
	return true
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
