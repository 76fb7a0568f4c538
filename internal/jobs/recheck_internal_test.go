package jobs

import (
	"testing"
	"time"
)

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
