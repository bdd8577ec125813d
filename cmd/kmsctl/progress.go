package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line progress bar on a terminal, at most five times
// a second. It is only created when stderr is a terminal.
type progress struct {
	w        io.Writer
	label    string
	total    int64 // -1 if unknown (stdin)
	done     int64
	start    time.Time
	last     time.Time
	drawn    bool
	finished bool
	now      func() time.Time
}

const progressInterval = 200 * time.Millisecond

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: total, now: time.Now}
	p.start = p.now()
	p.last = p.start
	return p
}

func (p *progress) add(n int) {
	p.done += int64(n)
	if t := p.now(); t.Sub(p.last) >= progressInterval {
		p.last = t
		p.draw()
	}
}

func (p *progress) draw() {
	elapsed := p.now().Sub(p.start).Seconds()
	rate := ""
	if elapsed > 0 {
		rate = "  " + byteSize(int64(float64(p.done)/elapsed)) + "/s"
	}
	line := fmt.Sprintf("%s  %s%s", p.label, byteSize(p.done), rate)
	if p.total > 0 {
		frac := min(float64(p.done)/float64(p.total), 1)
		const width = 24
		fill := int(frac * width)
		line = fmt.Sprintf("%s [%s%s] %3.0f%%  %s / %s%s", p.label, strings.Repeat("=", fill),
			strings.Repeat(" ", width-fill), frac*100, byteSize(p.done), byteSize(p.total), rate)
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line) // \x1b[K clears the rest of the line
	p.drawn = true
}

// finish draws the final state and ends the line, if anything was drawn.
func (p *progress) finish() {
	if p.finished || !p.drawn {
		return
	}
	p.finished = true
	p.draw()
	fmt.Fprintln(p.w)
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
