package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/consentsync/consentsync/internal/progress"
)

// Progress shows how far a long command is on w (stderr): on a terminal a
// progress bar (github.com/schollz/progressbar/v3; a spinner with a count
// when the total is not known), redrawn at most every 100 ms; otherwise
// (a pipe, a log file, CI) a plain line
//
//	replay: enqueue 2000/8000 (25%)
//
// when a phase starts, then every Every items or every Interval, whichever
// comes first, and when the phase ends. Use Func as the operation's progress.Func, and Finish when
// it returns. Safe for use by one operation at a time.
type Progress struct {
	// Every and Interval pace the plain lines (defaults 1,000 items, 5 s).
	Every    int64
	Interval time.Duration

	w     io.Writer
	what  string
	tty   bool
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	phase string
	total int64
	done  int64
	// lastDone, lastAt: the last plain line.
	lastDone int64
	lastAt   time.Time
	now      func() time.Time
}

// NewProgress returns a Progress for command what writing to w; a bar when
// w is a terminal (an *os.File whose descriptor is one).
func NewProgress(w io.Writer, what string) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Progress{w: w, what: what, tty: tty, Every: 1000, Interval: 5 * time.Second, now: time.Now}
}

// Func is the progress.Func feeding p.
func (p *Progress) Func() progress.Func { return p.update }

func (p *Progress) update(phase string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase != p.phase {
		p.endPhase()
		p.phase, p.total, p.lastDone, p.lastAt = phase, total, 0, p.now()
		if !p.tty {
			// A line as the phase starts: a log shows what runs now.
			p.done = done
			p.line()
			return
		}
		{
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(p.what+": "+phase),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(total > 0),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
			)
		}
	}
	p.done = done
	if total != p.total && p.bar != nil {
		p.bar.ChangeMax64(total)
	}
	p.total = total
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if done-p.lastDone >= p.Every || p.now().Sub(p.lastAt) >= p.Interval {
		p.line()
	}
}

// line writes the plain progress line of the current phase.
func (p *Progress) line() {
	p.lastDone, p.lastAt = p.done, p.now()
	if p.total > 0 {
		fmt.Fprintf(p.w, "%s: %s %d/%d (%d%%)\n", p.what, p.phase, p.done, p.total, p.done*100/p.total)
		return
	}
	fmt.Fprintf(p.w, "%s: %s %d\n", p.what, p.phase, p.done)
}

// endPhase closes the current phase: the bar is completed, or a last plain
// line says where it ended (unless the previous line already did).
func (p *Progress) endPhase() {
	if p.phase == "" {
		return
	}
	if p.bar != nil {
		_ = p.bar.Finish() // its OnCompletion ends the line
		p.bar = nil
		return
	}
	if p.lastDone != p.done || p.done == 0 {
		p.line()
	}
}

// Finish ends the display; call it before printing the command's result.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endPhase()
	p.phase = ""
}
