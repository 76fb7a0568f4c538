package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// queued waits until n calls wait in b's queue.
func queued[Req, Res any](b *Batcher[Req, Res], n int) {
	for {
		b.mu.Lock()
		l := len(b.queue)
		b.mu.Unlock()
		if l >= n {
			return
		}
		runtime.Gosched()
	}
}

// TestBatcher holds the first statement while six calls queue behind it, and
// checks that they run as batches of at most max (3), that each caller gets
// its own result, and that a batch's error reaches each caller of that batch
// and no other.
func TestBatcher(t *testing.T) {
	errBoom := errors.New("boom")
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	b := New(3, func(ctx context.Context, reqs []int) ([]int, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("statement runs without a deadline")
		}
		mu.Lock()
		batches = append(batches, slices.Clone(reqs))
		mu.Unlock()
		if reqs[0] == 0 {
			<-release
		}
		if slices.Contains(reqs, 13) {
			return nil, errBoom
		}
		res := make([]int, len(reqs))
		for i, r := range reqs {
			res[i] = r * 10
		}
		return res, nil
	})

	type outcome struct {
		res int
		err error
	}
	got := make(map[int]outcome)
	var wg sync.WaitGroup
	do := func(req int) {
		defer wg.Done()
		res, err := b.Do(req)
		mu.Lock()
		got[req] = outcome{res, err}
		mu.Unlock()
	}
	wg.Add(1)
	go do(0)
	// The first call runs alone; only then do the others come, one at a time
	// so that the queue's order is known: 11, 12, 13 form a batch, 14, 15, 16 the next.
	for {
		mu.Lock()
		started := len(batches) == 1
		mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	for i, req := range []int{11, 12, 13, 14, 15, 16} {
		wg.Add(1)
		go do(req)
		queued(b, i+1)
	}
	close(release)
	wg.Wait()

	want := [][]int{{0}, {11, 12, 13}, {14, 15, 16}}
	if !slices.EqualFunc(batches, want, slices.Equal[[]int]) {
		t.Errorf("batches = %v, want %v", batches, want)
	}
	for _, req := range []int{0, 14, 15, 16} {
		if o := got[req]; o.err != nil || o.res != req*10 {
			t.Errorf("Do(%d) = %d, %v; want %d, nil", req, o.res, o.err, req*10)
		}
	}
	for _, req := range []int{11, 12, 13} {
		if o := got[req]; !errors.Is(o.err, errBoom) {
			t.Errorf("Do(%d) error = %v, want %v", req, o.err, errBoom)
		}
	}

	// With the queue empty, the next call starts a statement of its own.
	if res, err := b.Do(7); err != nil || res != 70 {
		t.Errorf("Do(7) = %d, %v; want 70, nil", res, err)
	}
	if last := batches[len(batches)-1]; !slices.Equal(last, []int{7}) {
		t.Errorf("last batch = %v, want [7]", last)
	}
}
