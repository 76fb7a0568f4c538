package jobs

import (
	"testing"
	"time"
)

// TestRetryDelay: the backoff doubles per failure within ±20 %, is bounded
// by 5 minutes at the start, and never undercuts Microsoft's Retry-After.
func TestRetryDelay(t *testing.T) {
	t.Parallel()
	for range 100 {
		for n, base := range map[int]time.Duration{1: 5 * time.Minute, 2: 10 * time.Minute} {
			if d := retryDelay(n, 0, 24*time.Hour); d < base*8/10 || d > base*12/10 {
				t.Errorf("failure %d of a daily re-check: %v, want %v ±20%%", n, d, base)
			}
		}
		if d := retryDelay(1, 0, time.Second); d < 40*time.Millisecond || d > 60*time.Millisecond {
			t.Errorf("failure 1 of a 1s interval: %v", d)
		}
		if d := retryDelay(1, 27*time.Second, 24*time.Hour); d < 4*time.Minute {
			t.Errorf("a short Retry-After shortened the backoff: %v", d)
		}
		if d := retryDelay(2, time.Hour, 24*time.Hour); d != time.Hour {
			t.Errorf("Retry-After of an hour: %v", d)
		}
	}
}

func TestScheduleEvery(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]time.Duration{
		24 * time.Hour: time.Minute, 5 * time.Minute: 30 * time.Second, time.Second: 100 * time.Millisecond,
	} {
		if got := scheduleEvery(in); got != want {
			t.Errorf("scheduleEvery(%v) = %v, want %v", in, got, want)
		}
	}
}
