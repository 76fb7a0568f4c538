package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// accountLimiter is a token bucket per account. Tests call Microsoft on the
// customer's behalf, so a runaway client must not get their app throttled.
type accountLimiter struct {
	mu      sync.Mutex
	every   time.Duration
	burst   int
	now     func() time.Time
	buckets map[string]*rate.Limiter
}

func newAccountLimiter(every time.Duration, burst int, now func() time.Time) *accountLimiter {
	return &accountLimiter{every: every, burst: burst, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for account, or says how long until one is free.
func (l *accountLimiter) allow(account string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.buckets[account]
	if !ok {
		if len(l.buckets) > 10000 { // forget full buckets: they are the same as new ones
			for k, b := range l.buckets {
				if b.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.buckets[account] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}
