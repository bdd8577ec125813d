package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

type rssFigure struct {
	name string
	kb   int64
}

// report is everything a kmsbench invocation measured, printed as Markdown.
type report struct {
	opts     *options
	machine  machine
	command  string
	kmsdArgv []string
	targets  []*target
	results  []*loadResult
	rss      []rssFigure
}

func (r *report) errors() int64 {
	var n int64
	for _, res := range r.results {
		n += res.errors
	}
	return n
}

func (r *loadResult) combined() *hist {
	h := new(hist)
	for _, x := range r.hist {
		h.merge(x)
	}
	return h
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}

// fmtRate prints a rate with thousands separators: 12,345.
func fmtRate(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtMiB(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(xs []float64, f func(float64) string) string {
	p := make([]string, len(xs))
	for i, x := range xs {
		p[i] = f(x)
	}
	return strings.Join(p, ", ")
}

func ratio(x float64) string { return fmt.Sprintf("%.2f×", x) }

func (r *report) write(w io.Writer) {
	o, m := r.opts, r.machine
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("### kmsbench run, %s\n\n", m.started.Format("2006-01-02 15:04 UTC"))
	if n := r.errors(); n > 0 {
		p("> **⚠ %d REQUESTS FAILED. These figures are NOT valid.** First errors:\n", n)
		for _, res := range r.results {
			for _, e := range res.errSample {
				p(">\n> - `%s`\n", e)
			}
		}
		p("\n")
	}
	p("Command:\n\n```sh\n%s\n```\n\n", r.command)
	if len(r.kmsdArgv) > 0 {
		p("kmsd ran as `%s`.\n\n", strings.Join(r.kmsdArgv, " "))
	}
	p("Machine:\n\n")
	p("- CPU: %d × %s", m.cpus, m.cpuModel)
	if m.cpuMHz != "" {
		p(" (%s MHz)", m.cpuMHz)
	}
	p(", memory %s, Linux %s\n", m.memTotal, m.kernel)
	p("- Go: kmsbench %s", m.goVersion)
	if m.kmsdBuild != "" {
		p("; kmsd %s", m.kmsdBuild)
	}
	p("\n- GOMAXPROCS: load generator %d, servers %s. Load generator and servers share the same CPUs.\n", m.clientGMP, m.serverGMP)
	if m.dataFS != "" {
		p("- kmsd data directory on %s", m.dataFS)
		if m.fsync != "" {
			p("; fsync there: %s", m.fsync)
		}
		p("\n")
	}
	p("- Load average (1, 5, 15 min) before: %s, after: %s\n", m.loadBefore, m.loadAfter)
	for _, t := range r.targets {
		if t.tlsInfo != "" {
			p("- %s: %s\n", t.name, t.tlsInfo)
		}
	}
	p("- Load: %d keep-alive connections, one goroutine each, closed loop; %v warm-up, then %v measured per run; %d data keys read by GET\n\n",
		o.conns, o.warmup, o.duration, o.keys)

	p("| round | client | server | request | req/s | p50 | p90 | p99 | max | errors | server CPU/req | client CPU/req | cores: server / client / other | connections | server RSS after |\n")
	p("|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, res := range r.results {
		total := res.total()
		for op, h := range res.hist {
			if h.n == 0 && !(op == opGet && res.spec.scenario == "get") && !(op == opPost && res.spec.scenario == "post") {
				continue
			}
			req := opNames[op]
			if res.spec.scenario == "mixed" {
				req += fmt.Sprintf(" (mixed, %d%% POST)", res.spec.postPercent)
			}
			srvCPU, cliCPU := "–", "–"
			if res.serverCPU >= 0 && total > 0 {
				srvCPU = fmtDur(res.serverCPU / time.Duration(total))
			}
			if res.clientCPU >= 0 && total > 0 {
				cliCPU = fmtDur(res.clientCPU / time.Duration(total))
			}
			cores := strings.Join([]string{res.cores(res.serverCPU), res.cores(res.clientCPU), res.cores(res.otherCPU)}, " / ")
			rss := "–"
			if res.rssKB >= 0 {
				rss = fmtMiB(res.rssKB)
			}
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %d | %s |\n",
				res.round, res.spec.client, res.spec.target.name, req, fmtRate(float64(h.n)/res.window.Seconds()),
				fmtDur(h.quantile(0.50)), fmtDur(h.quantile(0.90)), fmtDur(h.quantile(0.99)), fmtDur(h.quantile(1)),
				res.errors, srvCPU, cliCPU, cores, res.dials, rss)
		}
	}
	p("\nServer (client) CPU/req: the server's (kmsbench's) user+system CPU time over the measured window divided by the requests completed in it; it depends much less on other load on the machine than req/s does. Cores: CPU time over the window of the server, of kmsbench and of all other processes on the machine (other > 0.1 means the figures are disturbed). Latencies are per request, from sending to the last body byte; with a closed loop, p50 ≈ connections ÷ throughput. A mixed run's CPU figures are per request of either kind.\n\n")

	p("Summary (medians over rounds):\n\n| check | measured | target | verdict |\n|---|---|---|---|\n")
	for _, client := range o.clients {
		var ratios, cpuRatios, modelRatios, floorCPU, kmsdCPU, posts []float64
		for round := 1; round <= o.rounds; round++ {
			fl := r.find(round, client, "floor", "get")
			for _, name := range []string{"kmsd", "server"} {
				if g := r.find(round, client, name, "get"); g != nil && fl != nil && fl.rate() > 0 {
					ratios = append(ratios, g.rate()/fl.rate())
					if g.serverCPU > 0 && fl.serverCPU > 0 {
						fc := fl.serverCPU.Seconds() / float64(fl.total()) * 1e6
						kc := g.serverCPU.Seconds() / float64(g.total()) * 1e6
						floorCPU, kmsdCPU = append(floorCPU, fc), append(kmsdCPU, kc)
						cpuRatios = append(cpuRatios, fc/kc)
						if g.clientCPU > 0 && fl.clientCPU > 0 {
							fcc := fl.clientCPU.Seconds() / float64(fl.total()) * 1e6
							kcc := g.clientCPU.Seconds() / float64(g.total()) * 1e6
							modelRatios = append(modelRatios, (fc+fcc)/(kc+kcc))
						}
					}
				}
				if po := r.find(round, client, name, "post"); po != nil {
					posts = append(posts, po.rate())
				}
			}
		}
		if len(ratios) > 0 {
			verdict := "**PASS**"
			if median(ratios) < 0.85 {
				verdict = "**FAIL**"
			}
			p("| GET /dataKey req/s, kmsd ÷ floor (%s client) | %s (rounds: %s) | ≥ 0.85× | %s |\n",
				client, ratio(median(ratios)), fmtList(ratios, ratio), verdict)
		}
		if len(cpuRatios) > 0 {
			us := func(x float64) string { return fmt.Sprintf("%.1f µs", x) }
			p("| server CPU per GET, floor ÷ kmsd (%s client) | %s (floor %s, kmsd %s) | – | – |\n",
				client, ratio(median(cpuRatios)), us(median(floorCPU)), us(median(kmsdCPU)))
		}
		if len(modelRatios) > 0 {
			verdict := "pass"
			if median(modelRatios) < 0.85 {
				verdict = "fail"
			}
			p("| GET req/s ratio a CPU-bound quiet machine would give: (floor + client CPU/req) ÷ (kmsd + client CPU/req) (%s client) | %s (rounds: %s) | ≥ 0.85× | %s (estimate) |\n",
				client, ratio(median(modelRatios)), fmtList(modelRatios, ratio), verdict)
		}
		if len(posts) > 0 {
			verdict := "**PASS**"
			if median(posts) < 5000 {
				verdict = "**FAIL**"
			}
			p("| durable POST /dataKey req/s (%s client) | %s (rounds: %s) | ≥ 5,000/s | %s |\n",
				client, fmtRate(median(posts)), fmtList(posts, fmtRate), verdict)
		}
	}
	for _, x := range r.rss {
		p("| peak RSS (VmHWM) of %s, whole run | %s | – | – |\n", x.name, fmtMiB(x.kb))
	}
	if n := r.errors(); n > 0 {
		p("| failed requests | **%d** | 0 | **FAIL** |\n", n)
	} else {
		p("| failed requests | 0 | 0 | PASS |\n")
	}
	p("\n")
}

func (r *loadResult) cores(d time.Duration) string {
	if d < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", d.Seconds()/r.window.Seconds())
}

func (r *report) find(round int, client, target, scenario string) *loadResult {
	for _, res := range r.results {
		if res.round == round && res.spec.client == client && res.spec.target.name == target && res.spec.scenario == scenario {
			return res
		}
	}
	return nil
}
