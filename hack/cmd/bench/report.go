package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// order is how contenders appear in tables and the plot.
var order = []string{opCold, opWarm, opDrift, opColdSub, opPassWarm, ansCold, ansWarm, sshSeq, sshXargs, sshXargsSub}

func fmtS(s float64) string {
	switch {
	case s == 0:
		return "0 s"
	case s < 0.01:
		return fmt.Sprintf("%.1f ms", s*1000)
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	case s < 100:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

func fmtMiB(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
}

func fmtX(x float64) string {
	if x >= 10 {
		return fmt.Sprintf("%.0f×", x)
	}
	return fmt.Sprintf("%.1f×", x)
}

func writeReport(out string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if _, err := writeFile(out, "benchmarks.json", append(b, '\n'), 0o644); err != nil {
		return err
	}
	plot, err := writePlot(filepath.Join(out, "benchmarks"), res)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(out, plot)
	_, err = writeFile(out, "benchmarks.md", []byte(renderMarkdown(res, rel)), 0o644)
	return err
}

// writePlot draws median wall time against N for every contender.
func writePlot(dir string, res *Results) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var plots []string
	for _, name := range order {
		var data strings.Builder
		for _, n := range res.sizes() {
			if s, ok := res.summary(n, name); ok {
				fmt.Fprintf(&data, "%d %g %g %g\n", n, s.WallMedS, s.WallMinS, s.WallMaxS)
			}
		}
		if data.Len() == 0 {
			continue
		}
		f, err := writeFile(dir, "time-vs-nodes-"+name+".dat", []byte(data.String()), 0o644)
		if err != nil {
			return "", err
		}
		plots = append(plots, fmt.Sprintf("%q using 1:2:3:4 with yerrorlines title %q", f, name))
	}
	png := filepath.Join(dir, "time-vs-nodes.png")
	script := fmt.Sprintf(`set terminal pngcairo size 960,600 font "sans,11"
set output %q
set title "Converging N agents: wall time (median; bars min..max)"
set xlabel "agents (N)"
set ylabel "wall time (s)"
set logscale xy
set grid
set key outside right
set xrange [5:2000]
plot %s
`, png, strings.Join(plots, ", \\\n  "))
	gp, err := writeFile(dir, "time-vs-nodes.gp", []byte(script), 0o644)
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("gnuplot", gp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("gnuplot: %w: %s", err, out)
	}
	// The data files are inputs of the plot only; the JSON holds the numbers.
	for _, name := range order {
		os.Remove(filepath.Join(dir, "time-vs-nodes-"+name+".dat"))
	}
	os.Remove(gp)
	return png, nil
}

type target struct {
	name, status, detail string
}

// targets evaluates the targets against whatever sizes were measured.
func targets(res *Results) []target {
	var ts []target
	add := func(name string, ok, measured bool, detail string) {
		st := "not measured"
		if measured {
			st = "**missed**"
			if ok {
				st = "met"
			}
		}
		ts = append(ts, target{name, st, detail})
	}
	faster := func(name string, n int, them string, want float64) {
		op, ok1 := res.summary(n, opCold)
		o, ok2 := res.summary(n, them)
		if !ok1 || !ok2 {
			add(name, false, false, "run `make bench` with ansible and the ssh loops")
			return
		}
		x := o.WallMedS / op.WallMedS
		d := fmt.Sprintf("%s vs %s: %s faster", fmtS(op.WallMedS), fmtS(o.WallMedS), fmtX(x))
		if x < want {
			d += fmt.Sprintf("; short by %s (the pass would need to take %s)", fmtX(want/x), fmtS(o.WallMedS/want))
			// Both are bound by the machine's two cores; say whose CPU it is.
			if op.MachineCPUMedS > 0 && o.MachineCPUMedS > 0 {
				d += fmt.Sprintf(". Both saturate the machine: per node the operator's pass costs %s of machine CPU, of which its own process %s and the fleet's sshd and sftp-server %s; the loop costs %s (its ssh clients %s, the fleet %s). The sshd side of one connection (fork, re-exec, key exchange, the session's shell) is a floor the operator cannot go under",
					fmtS(op.MachineCPUMedS/float64(n)), fmtS(op.CPUMedS/float64(n)), fmtS(op.FleetCPUMedS/float64(n)),
					fmtS(o.MachineCPUMedS/float64(n)), fmtS(o.CPUMedS/float64(n)), fmtS(o.FleetCPUMedS/float64(n)))
			}
		}
		add(name, x >= want, true, d)
	}
	under := func(name string, v float64, measured bool, limit float64, unit func(float64) string) {
		if !measured {
			add(name, false, false, "")
			return
		}
		d := fmt.Sprintf("%s (limit %s)", unit(v), unit(limit))
		if v <= limit {
			d += fmt.Sprintf(", %s under", fmtX(limit/math.Max(v, 1e-9)))
		} else {
			d += fmt.Sprintf(", %s over", fmtX(v/limit))
		}
		add(name, v <= limit, true, d)
	}
	faster("cold pass, 100 nodes: ≥ 25× faster than Ansible", 100, ansCold, 25)
	faster("cold pass, 100 nodes: ≥ 2× faster than the `xargs -P 32` loop", 100, sshXargs, 2)
	for _, c := range []struct {
		n     int
		limit float64
	}{{100, 0.3}, {1000, 2}} {
		s, ok := res.summary(c.n, opPassWarm)
		under(fmt.Sprintf("warm pass, %d nodes: < %s", c.n, fmtS(c.limit)), s.WallMedS, ok, c.limit, fmtS)
		if r := res.run(c.n); ok && s.WallMedS > c.limit && r.Steady != nil && r.Steady.Passes > 0 {
			ts[len(ts)-1].detail += fmt.Sprintf("; the operator spends %s of CPU per pass%s", fmtS(r.Steady.CPUS/r.Steady.Passes), hot(r))
		}
	}
	c100, ok1 := res.summary(100, opCold)
	c1000, ok2 := res.summary(1000, opCold)
	if ok1 && ok2 {
		under("cold pass, 1000 nodes: no worse than linear from 100 (≤ 10× the 100-node time)",
			c1000.WallMedS/c100.WallMedS, true, 10, func(v float64) string { return fmt.Sprintf("%.1f×", v) })
		ts[len(ts)-1].detail = fmt.Sprintf("%s at 1000 vs %s at 100: %s", fmtS(c1000.WallMedS), fmtS(c100.WallMedS), ts[len(ts)-1].detail)
		if r := res.run(1000); r != nil && len(r.Samples[opCold]) > 1 {
			// In the order measured: whether the machine drifted while
			// the big fleet lived shows here and in the subset passes.
			var reps []string
			for _, x := range r.Samples[opCold] {
				reps = append(reps, fmt.Sprintf("%s (steal %s)", fmtS(x.WallS), fmtS(x.StealS)))
			}
			ts[len(ts)-1].detail += fmt.Sprintf(" (the repetitions at 1000, in order, with the CPU time the hypervisor took from this machine during each: %s)", strings.Join(reps, ", "))
		}
		// The fleet itself grows on the same two cores: the other contenders
		// show how much of the growth is the fleet's.
		x100, okx1 := res.summary(100, sshXargs)
		x1000, okx2 := res.summary(1000, sshXargs)
		if okx1 && okx2 {
			ts[len(ts)-1].detail += fmt.Sprintf("; on the same fleets the `xargs -P 32` loop grew %.1f× (%s to %s)",
				x1000.WallMedS/x100.WallMedS, fmtS(x100.WallMedS), fmtS(x1000.WallMedS))
		}
		if cs, ok := res.summary(1000, opColdSub); ok && cs.WallMedS > 0 {
			n := float64(subsetNodes)
			ts[len(ts)-1].detail += fmt.Sprintf("; on the 1000-node fleet itself, a cold pass over %d of its nodes took %s, and the pass over all 1000 %.1f× that: per node the operator's own CPU went from %s to %s and the fleet's sshd and sftp-server from %s to %s (each connection asks the same of its sshd; what differs is the machine running 1000 hosts' sshd in turn on its two cores instead of 100)",
				subsetNodes, fmtS(cs.WallMedS), c1000.WallMedS/cs.WallMedS,
				fmtS(cs.CPUMedS/n), fmtS(c1000.CPUMedS/1000), fmtS(cs.FleetCPUMedS/n), fmtS(c1000.FleetCPUMedS/1000))
			// The loop that asks the least of each host, over the same
			// hosts: its growth is what the machine adds, whoever drives it.
			if xs, ok := res.summary(1000, sshXargsSub); ok && xs.WallMedS > 0 && okx2 {
				ts[len(ts)-1].detail += fmt.Sprintf("; the `xargs -P 32` loop over the same %d nodes took %s, and over all 1000 %.1f× that (machine CPU per node %s → %s, of which the fleet's %s → %s)",
					subsetNodes, fmtS(xs.WallMedS), x1000.WallMedS/xs.WallMedS,
					fmtS(xs.MachineCPUMedS/n), fmtS(x1000.MachineCPUMedS/1000), fmtS(xs.FleetCPUMedS/n), fmtS(x1000.FleetCPUMedS/1000))
			}
		}
		// Both passes saturate the two cores, so the wall time follows the
		// machine CPU per node: say whose it is at each size.
		if c1000.WallMedS/c100.WallMedS > 10 && c100.MachineCPUMedS > 0 && c1000.MachineCPUMedS > 0 {
			per := func(s Summary, n float64) string {
				return fmt.Sprintf("%s (operator %s, fleet %s, the rest: the kernel's network path and the machine's own background work %s)",
					fmtS(s.MachineCPUMedS/n), fmtS(s.CPUMedS/n), fmtS(s.FleetCPUMedS/n),
					fmtS(math.Max(0, s.MachineCPUMedS-s.CPUMedS-s.FleetCPUMedS)/n)) // medians of separate samples: clamp noise below 0
			}
			ts[len(ts)-1].detail += fmt.Sprintf(". Both sizes saturate the machine; machine CPU per node: %s at 100, %s at 1000",
				per(c100, 100), per(c1000, 1000))
		}
	} else {
		add("cold pass, 1000 nodes: no worse than linear from 100", false, false, "needs runs at 100 and 1000 nodes")
	}
	var peak, oncePeak, runPeak int64
	if r := res.run(1000); r != nil {
		for _, n := range []string{opCold, opWarm, opDrift} {
			oncePeak = max(oncePeak, r.Summary[n].MaxRSSKiB)
		}
		if r.Steady != nil {
			runPeak = r.Steady.PeakRSSKiB
		}
		peak = max(oncePeak, runPeak)
	}
	under("operator peak RSS, 1000 nodes: < 64 MiB", float64(peak), peak > 0, 64*1024, func(v float64) string { return fmtMiB(int64(v)) })
	if peak > 0 {
		ts[len(ts)-1].detail += fmt.Sprintf("; `run --once` (hangs up each node after its passes) %s, `run` (keeps one SSH connection and SFTP session per node) %s",
			fmtMiB(oncePeak), fmtMiB(runPeak))
		r := res.run(1000)
		if peak > 64*1024 && r.Steady != nil && r.Steady.RSSFileKiB > 0 {
			ts[len(ts)-1].detail += fmt.Sprintf(", of which %s the binary's own file pages (RssFile)", fmtMiB(r.Steady.RSSFileKiB))
			if st := r.Steady; st.HeapInuseB > 0 {
				ts[len(ts)-1].detail += fmt.Sprintf(", %s goroutine stacks (%.0f goroutines: x/crypto's three per kept connection, each parked with a 4 KiB stack) and %s of heap in use (GOGC %.0f; %.0f collections in the %.0f s window)",
					fmtMiB(int64(st.StackInuseB/1024)), st.Goroutines, fmtMiB(int64(st.HeapInuseB/1024)), st.GOGC, st.GCs, st.WindowS)
			}
		}
		if peak > 64*1024 && r.Steady != nil {
			// The limited runs show what holding the peak down costs.
			for _, st := range r.MemLimited {
				ts[len(ts)-1].detail += fmt.Sprintf("; with GOMEMLIMIT=%s `run` peaked at %s and took %.2f%% of a core (%.0f collections in %s)",
					st.MemLimit, fmtMiB(st.PeakRSSKiB), st.CorePct, st.GCs, fmtS(st.WindowS))
			}
		}
		if w, ok := r.Summary[opWarm]; peak > 64*1024 && ok && w.CPUMedS > 0 && r.Steady != nil && r.Steady.IntervalS > 0 {
			// The alternative to holding every connection: what redialling
			// costs, from the warm one-shot pass (a dial and a check per node).
			dial := w.CPUMedS / 1000
			ts[len(ts)-1].detail += fmt.Sprintf(". What x/crypto itself holds per kept connection is measured in docs/architecture.md (\"What a kept connection holds\", BenchmarkBareConnections): with the binary's file pages it takes most of the 64 MiB at 1000 agents. Closing idle connections beyond a cap was not chosen: a dial and a check cost the operator %s of CPU per node (warm `run --once`), so redialling even a tenth of the fleet every %.0f s round would cost %.2f%% of a core, against the 1%% steady-state target",
				fmtS(dial), r.Steady.IntervalS, dial*100/r.Steady.IntervalS*100)
		}
	}
	var pct float64
	r := res.run(1000)
	if r != nil && r.Steady != nil {
		pct = r.Steady.CorePct
	}
	under("steady state, 1000 nodes, 30 s interval: < 1% of one core", pct, r != nil && r.Steady != nil, 1,
		func(v float64) string { return fmt.Sprintf("%.3f%%", v) })
	if r != nil && r.Steady != nil && pct > 1 {
		ts[len(ts)-1].detail += fmt.Sprintf(" (%.0f CPU-s per hour)%s", r.Steady.CPUSPerH, hot(r))
		if r.Steady.Passes > 0 {
			ts[len(ts)-1].detail += fmt.Sprintf(". That is %s of operator CPU per node and pass (see docs/architecture.md, \"What a node pass costs\"); on this machine the kernel's veth path makes the sending process pay the receiver's TCP work too",
				fmtS(r.Steady.CPUS/r.Steady.Passes/float64(r.Nodes)))
		}
	}
	return ts
}

// hot names where the operator's CPU goes under `run`, from its profile.
func hot(r *Run) string {
	if len(r.RunHotspots) == 0 {
		return ""
	}
	return ", mostly under " + strings.Join(r.RunHotspots[:min(4, len(r.RunHotspots))], ", ")
}
