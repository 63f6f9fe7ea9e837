package tests

import "sync"

// repeatUntilStopped runs work over and over in n goroutines, as load for a test, until the
// returned stop is called; stop waits for the goroutines to finish and may be called twice.
func repeatUntilStopped(n int, work func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
					work()
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
