// Command bench measures the operator against the alternatives users run
// today (an Ansible playbook, one ssh per node) on a fleet of real OpenSSH
// hosts, and writes docs/benchmarks.md and docs/benchmarks.json. Run it
// through `make bench` (hack/bench.sh), as root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

type config struct {
	nodes       int
	scale       bool
	reps        int
	slowReps    int // Ansible and the sequential loop at the main size
	scaleReps   int
	ansibleWarm bool
	steady      time.Duration
	interval    time.Duration
	out         string
	work        string
	operator    string
	only        []string
	remeasure   bool
	render      bool
	// memLimits are GOMEMLIMIT values under which the steady state is
	// measured again (BENCH_MEMLIMITS).
	memLimits []string
	// The machine is shared: measuring while other work runs inflates
	// every contender's CPU and wall time, the fleet's sshd most.
	quietLoad float64
	quietWait time.Duration
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func parseConfig() (*config, error) {
	c := &config{}
	var steady, interval, only, memLimits string
	slow, awarm := -1, ""
	flag.IntVar(&c.nodes, "nodes", envInt("BENCH_NODES", 100), "fleet size of the full comparison (env BENCH_NODES)")
	flag.BoolVar(&c.scale, "scale", envBool("BENCH_SCALE", false), "also measure N = 10, 100, 1000 for the scaling table (env BENCH_SCALE)")
	flag.IntVar(&c.reps, "reps", envInt("BENCH_REPS", 3), "repetitions at the main size (env BENCH_REPS)")
	flag.IntVar(&slow, "slow-reps", envInt("BENCH_SLOW_REPS", -1), "repetitions of Ansible and the sequential loop; default reps up to 100 nodes, 1 above (env BENCH_SLOW_REPS)")
	flag.IntVar(&c.scaleReps, "scale-reps", envInt("BENCH_SCALE_REPS", 1), "repetitions at the other scaling sizes (env BENCH_SCALE_REPS)")
	flag.StringVar(&awarm, "ansible-warm", envStr("BENCH_ANSIBLE_WARM", "auto"), "measure Ansible with nothing to change: true, false, auto (up to 100 nodes) (env BENCH_ANSIBLE_WARM)")
	flag.StringVar(&steady, "steady", envStr("BENCH_STEADY", "3m"), "steady-state window under `run` (env BENCH_STEADY)")
	flag.StringVar(&interval, "interval", envStr("BENCH_INTERVAL", "30s"), "reconcile.interval of the steady state (env BENCH_INTERVAL)")
	flag.StringVar(&memLimits, "mem-limits", envStr("BENCH_MEMLIMITS", "auto"), "GOMEMLIMIT values to measure the steady state under again, comma-separated; auto: "+defaultMemLimits+" at 1000 nodes, none below; none: none (env BENCH_MEMLIMITS)")
	flag.StringVar(&c.out, "out", envStr("BENCH_OUT", "docs"), "where benchmarks.md, benchmarks.json and benchmarks/ go (env BENCH_OUT)")
	flag.StringVar(&c.work, "work", envStr("BENCH_WORK", "/tmp/registry-operator-bench"), "working directory (env BENCH_WORK)")
	flag.StringVar(&c.operator, "operator", envStr("BENCH_OPERATOR", "bin/registry-operator"), "operator binary (env BENCH_OPERATOR)")
	flag.StringVar(&only, "only", envStr("BENCH_ONLY", "operator,ansible,ssh-seq,ssh-xargs"), "contenders (env BENCH_ONLY)")
	flag.BoolVar(&c.remeasure, "remeasure", envBool("BENCH_REMEASURE", false), "re-measure scaling sizes that already have full results (env BENCH_REMEASURE)")
	flag.Float64Var(&c.quietLoad, "quiet-load", envFloat("BENCH_QUIET_LOAD", 1.0), "wait until the 1-minute load average is at most this before measuring; 0: do not wait (env BENCH_QUIET_LOAD)")
	flag.DurationVar(&c.quietWait, "quiet-wait", envDur("BENCH_QUIET_WAIT", 10*time.Minute), "longest wait for a quiet machine (env BENCH_QUIET_WAIT)")
	flag.BoolVar(&c.render, "render", false, "only rewrite benchmarks.md and the plot from benchmarks.json")
	flag.Parse()
	var err error
	if c.steady, err = time.ParseDuration(steady); err != nil {
		return nil, fmt.Errorf("BENCH_STEADY: %w", err)
	}
	if c.interval, err = time.ParseDuration(interval); err != nil {
		return nil, fmt.Errorf("BENCH_INTERVAL: %w", err)
	}
	if c.nodes < 1 || c.nodes > 1000 {
		return nil, fmt.Errorf("BENCH_NODES=%d: want 1..1000", c.nodes)
	}
	if c.reps < 1 {
		return nil, fmt.Errorf("BENCH_REPS=%d: want at least 1", c.reps)
	}
	c.slowReps = slow
	if slow < 0 {
		c.slowReps = c.reps
		if c.nodes > 100 {
			c.slowReps = 1
		}
	}
	switch awarm {
	case "auto":
		c.ansibleWarm = c.nodes <= 100
	default:
		if c.ansibleWarm, err = strconv.ParseBool(awarm); err != nil {
			return nil, fmt.Errorf("BENCH_ANSIBLE_WARM=%q: want true, false or auto", awarm)
		}
	}
	if c.memLimits, err = parseMemLimits(memLimits, c.nodes); err != nil {
		return nil, err
	}
	for _, o := range strings.Split(only, ",") {
		o = strings.TrimSpace(o)
		if !slices.Contains([]string{"operator", "ansible", "ssh-seq", "ssh-xargs"}, o) {
			return nil, fmt.Errorf("BENCH_ONLY: unknown contender %q (operator, ansible, ssh-seq, ssh-xargs)", o)
		}
		c.only = append(c.only, o)
	}
	if c.operator, err = filepath.Abs(c.operator); err != nil {
		return nil, err
	}
	if c.out, err = filepath.Abs(c.out); err != nil {
		return nil, err
	}
	return c, nil
}

func logf(format string, a ...any) {
	fmt.Printf("%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func main() {
	c, err := parseConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *config) error {
	if c.render {
		res, err := loadResults(filepath.Join(c.out, "benchmarks.json"))
		if err != nil {
			return err
		}
		return writeReport(c.out, res)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, sshd)")
	}
	for _, tool := range []string{"ansible-playbook", "gnuplot", "ssh", "xargs", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run hack/bench.sh, which installs it", tool)
		}
	}
	if _, err := os.Stat(c.operator); err != nil {
		return fmt.Errorf("operator binary: %w (make build)", err)
	}
	if err := becomeSubreaper(); err != nil {
		return err
	}
	sizes := []int{c.nodes}
	if c.scale {
		for _, n := range []int{10, 100, 1000} {
			if n != c.nodes {
				sizes = append(sizes, n)
			}
		}
	}
	results, err := loadResults(filepath.Join(c.out, "benchmarks.json"))
	if err != nil {
		return err
	}
	// Scaling sizes that already have full results keep them.
	todo := sizes[:1]
	for _, n := range sizes[1:] {
		if r := results.Runs[strconv.Itoa(n)]; r != nil && r.Full && !c.remeasure {
			logf("N=%d: keeping the full results of %s", n, r.Date)
			continue
		}
		todo = append(todo, n)
	}
	if err := os.RemoveAll(c.work); err != nil {
		return err
	}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return err
	}
	size := slices.Max(todo)
	logf("starting a fleet of %d OpenSSH hosts", size)
	t0 := time.Now()
	fleet, err := testfleet.Start(ctx, testfleet.Options{N: size, Prefix: "robn"})
	if err != nil {
		return err
	}
	defer fleet.Close()
	if !fleet.ConntrackAvailable {
		return fmt.Errorf("%s does not exist: modprobe nf_conntrack (hack/bench.sh does)", sysctlKey)
	}
	logf("fleet up in %.1fs", time.Since(t0).Seconds())
	b := &bench{c: c, fleet: fleet, stateDir: filepath.Join(c.work, "state")}
	for i, n := range todo {
		r, err := b.measureSize(ctx, n, i == 0)
		if err != nil {
			return fmt.Errorf("fleet size %d: %w", n, err)
		}
		if i == 0 {
			r.carryFrom(results.Runs[strconv.Itoa(n)])
		}
		results.Runs[strconv.Itoa(n)] = r
		// Saved after every size so a long run that fails late keeps its results.
		if err := writeReport(c.out, results); err != nil {
			return err
		}
	}
	logf("wrote %s and %s", filepath.Join(c.out, "benchmarks.md"), filepath.Join(c.out, "benchmarks.json"))
	return nil
}

// defaultMemLimits: at 1000 agents, one limit below what `run` keeps live
// (the collector then runs all the time) and one with a little room.
const defaultMemLimits = "48MiB,56MiB"

var memLimitRE = regexp.MustCompile(`^[1-9][0-9]*(B|KiB|MiB|GiB)?$`)

// parseMemLimits reads BENCH_MEMLIMITS.
func parseMemLimits(v string, nodes int) ([]string, error) {
	switch v {
	case "none", "":
		return nil, nil
	case "auto":
		if nodes < 1000 {
			return nil, nil
		}
		v = defaultMemLimits
	}
	var out []string
	for _, l := range strings.Split(v, ",") {
		l = strings.TrimSpace(l)
		if !memLimitRE.MatchString(l) {
			return nil, fmt.Errorf("BENCH_MEMLIMITS: %q is not a GOMEMLIMIT value (want e.g. 48MiB; none or auto)", l)
		}
		out = append(out, l)
	}
	return out, nil
}
