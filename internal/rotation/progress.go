package rotation

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a rotation has got.
type progress interface {
	// update says that done rows have been rewrapped so far.
	update(done int64)
	// finish ends the display, before the summary is written.
	finish()
}

// newProgress returns a progress bar on w if w is a terminal, plain lines on
// w otherwise (a log file, kubectl logs), and nothing if w is nil or there is
// nothing to do. total is the number of rows to rewrap, as counted at start.
func newProgress(w io.Writer, total int64, start time.Time) progress {
	if w == nil || total == 0 {
		return noProgress{}
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{bar: progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("rewrapping"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)}
	}
	return &lineProgress{w: w, total: total, start: start, every: time.Second}
}

type noProgress struct{}

func (noProgress) update(int64) {}
func (noProgress) finish()      {}

// barProgress draws a progress bar with count, rate and time left.
type barProgress struct {
	bar *progressbar.ProgressBar
}

func (p *barProgress) update(done int64) {
	// Rows written under an old key while the rotation runs (a replica not
	// yet restarted) can make the count pass the first total.
	if done > p.bar.GetMax64() {
		p.bar.ChangeMax64(done)
	}
	_ = p.bar.Set64(done) // it only fails if the terminal does; progress is not worth stopping for
}

func (p *barProgress) finish() { _ = p.bar.Finish() }

// lineProgress writes a line at most every so often:
// "rewrapped 1500/100000 rows (1%), 25000 rows/s, about 4s left".
type lineProgress struct {
	w     io.Writer
	total int64
	start time.Time
	every time.Duration
	last  time.Time
}

func (p *lineProgress) update(done int64) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	fmt.Fprintln(p.w, progressLine(done, p.total, now.Sub(p.start)))
}

func (p *lineProgress) finish() {}

// progressLine formats one line of plain progress.
func progressLine(done, total int64, elapsed time.Duration) string {
	total = max(total, done, 1)
	line := fmt.Sprintf("rewrapped %d/%d rows (%.0f%%)", done, total, 100*float64(done)/float64(total))
	if s := elapsed.Seconds(); s > 0 && done > 0 {
		rate := float64(done) / s
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		round := time.Second
		if left < 10*time.Second {
			round = 100 * time.Millisecond
		}
		line += fmt.Sprintf(", %.0f rows/s, about %s left", rate, left.Round(round))
	}
	return line
}
