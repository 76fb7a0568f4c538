package jobs

import (
	"testing"
	"time"
)

// TestRetrySchedule: delays double from the base with at most ±20 %
// jitter, the same for a job and attempt every time it is asked, and the
// attempts span at least 24 h even when every delay comes out short.
func TestRetrySchedule(t *testing.T) {
	for _, base := range []time.Duration{30 * time.Second, time.Second, 20 * time.Millisecond} {
		n := maxDeliveryAttempts(base)
		var shortest time.Duration
		for attempt := 1; attempt < n; attempt++ {
			nominal := base << (attempt - 1)
			shortest += nominal * 8 / 10
			for job := int64(1); job <= 50; job++ {
				d := deliveryDelay(base, job, attempt)
				if d < nominal*8/10 || d > nominal*12/10 {
					t.Fatalf("base %s, attempt %d: delay %s outside %s ± 20%%", base, attempt, d, nominal)
				}
				if again := deliveryDelay(base, job, attempt); again != d {
					t.Fatalf("base %s, job %d, attempt %d: %s, then %s", base, job, attempt, d, again)
				}
			}
		}
		if shortest < 24*time.Hour {
			t.Errorf("base %s: %d attempts span at least %s, want 24h", base, n, shortest)
		}
		// One attempt fewer would not do: the count is the smallest that spans 24 h.
		if last := (base << (n - 2)) * 8 / 10; shortest-last >= 24*time.Hour {
			t.Errorf("base %s: %d attempts are more than needed", base, n)
		}
	}
	if n := maxDeliveryAttempts(30 * time.Second); n != 13 {
		t.Errorf("attempts with the default base: %d, want 13", n)
	}
	// Jitter spreads: fifty jobs do not all retry at one instant.
	seen := map[time.Duration]bool{}
	for job := int64(1); job <= 50; job++ {
		seen[deliveryDelay(30*time.Second, job, 1)] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 jobs got only %d distinct first delays", len(seen))
	}
}
