// Package groupcommit runs the calls of one statement together (group
// commit): while a statement runs, the calls that come in queue, and the next
// statement takes them all, up to a maximum. Calls made at once thus share
// round trips and transactions, and a call that finds nothing running starts
// at once.
package groupcommit

import (
	"context"
	"sync"
	"time"
)

// Timeout bounds one statement of a Batcher.
const Timeout = 10 * time.Second

// Batcher queues calls and runs them in batches. It is safe for concurrent
// use.
//
// The statement runs detached from its callers, for at most Timeout: it
// serves many, and a caller that gave up must still learn what it did (a
// claim it holds has to be released).
type Batcher[Req, Res any] struct {
	run func(ctx context.Context, reqs []Req) ([]Res, error)
	max int

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running bool
}

// New returns a Batcher whose statement is run: it runs the statement for
// reqs (at most max of them) and returns one Res per Req, in order, or an
// error that every caller of that batch gets.
func New[Req, Res any](max int, run func(ctx context.Context, reqs []Req) ([]Res, error)) *Batcher[Req, Res] {
	return &Batcher[Req, Res]{run: run, max: max}
}

type call[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	done chan struct{}
}

// Do queues req and returns its result once a statement has run it.
func (b *Batcher[Req, Res]) Do(req Req) (Res, error) {
	c := &call[Req, Res]{req: req, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if !b.running {
		b.running = true
		go b.flush()
	}
	b.mu.Unlock()
	<-c.done
	return c.res, c.err
}

// flush runs statements until the queue is empty.
func (b *Batcher[Req, Res]) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		calls := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()

		reqs := make([]Req, n)
		for i, c := range calls {
			reqs[i] = c.req
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		res, err := b.run(ctx, reqs)
		cancel()
		for i, c := range calls {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			close(c.done)
		}
	}
}
