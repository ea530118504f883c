package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

type bench struct {
	c        *config
	fleet    *testfleet.Fleet
	stateDir string
	ca       []byte // the CA bundle the operator distributes
	caFile   string
	seq      int // numbers log files
}

// group is one contender's measured sequence from a reset fleet.
type group struct {
	name string // operator, ansible, ssh-seq, ssh-xargs
	reps int
	run  func(ctx context.Context, r *Run) error
}

// measureSize runs every contender on the first n hosts. full adds the
// drift pass, the steady state and the profiles.
func (b *bench) measureSize(ctx context.Context, n int, full bool) (*Run, error) {
	s := &setup{
		dir: filepath.Join(b.c.work, fmt.Sprintf("n%d", n)), operator: b.c.operator,
		stateDir: b.stateDir, fleet: b.fleet, hosts: b.fleet.Hosts()[:n],
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.writeSpec(b.c.interval.String()); err != nil {
		return nil, err
	}
	r := &Run{Nodes: n, Date: time.Now().UTC().Format(time.RFC3339), Full: full, Machine: machineInfo(),
		Samples: map[string][]Sample{}}
	r.QuietWaitS, r.Quiet = b.waitQuiet(ctx)
	r.LoadBefore = loadAvg()
	reps, slow := b.c.reps, b.c.slowReps
	if !full {
		reps, slow = b.c.scaleReps, b.c.scaleReps
	}
	r.Reps, r.SlowReps = reps, slow

	// Untimed warm-up: issues the CA on the first size, fills caches.
	if err := reset(ctx, s.hosts); err != nil {
		return nil, err
	}
	logf("N=%d: warm-up pass", n)
	if _, err := b.operatorRun(ctx, s, "warmup", nil); err != nil {
		return nil, err
	}
	if b.ca == nil {
		ca, err := readCA(s.hosts[0])
		if err != nil {
			return nil, err
		}
		b.ca = ca
		if b.caFile, err = writeFile(b.c.work, "ca.crt", ca, 0o644); err != nil {
			return nil, err
		}
	}
	s.caFile = b.caFile
	if err := verify(ctx, s.hosts, b.ca); err != nil {
		return nil, fmt.Errorf("after the warm-up pass: %w", err)
	}
	playbook, err := s.writeAnsible()
	if err != nil {
		return nil, err
	}
	seed, err := s.writeSeed()
	if err != nil {
		return nil, err
	}

	var groups []group
	for _, name := range b.c.only {
		switch name {
		case "operator":
			groups = append(groups, group{name, reps, func(ctx context.Context, r *Run) error {
				return b.operatorGroup(ctx, s, r, full)
			}})
		case "ansible":
			groups = append(groups, group{name, slow, func(ctx context.Context, r *Run) error {
				if err := b.timed(ctx, s, r, ansCold, s.ansibleCmd(ctx, playbook)); err != nil {
					return err
				}
				if full && b.c.ansibleWarm {
					return b.timed(ctx, s, r, ansWarm, s.ansibleCmd(ctx, playbook))
				}
				return nil
			}})
		case "ssh-seq":
			groups = append(groups, group{name, slow, func(ctx context.Context, r *Run) error {
				return b.timed(ctx, s, r, sshSeq, s.seedCmd(ctx, seed, "seq"))
			}})
		case "ssh-xargs":
			groups = append(groups, group{name, reps, func(ctx context.Context, r *Run) error {
				sub := s.subset()
				if err := b.timed(ctx, s, r, sshXargs, s.seedCmd(ctx, seed, "xargs")); err != nil || !full || sub == nil {
					return err
				}
				// The same hosts as the operator's subset pass.
				if err := reset(ctx, sub.hosts); err != nil {
					return err
				}
				return b.timed(ctx, sub, r, sshXargsSub, s.seedCmd(ctx, seed, "xargs", filepath.Join(s.dir, subsetHostsFile)))
			}})
		}
	}
	maxReps := 0
	for _, g := range groups {
		maxReps = max(maxReps, g.reps)
	}
	// Alternate: each repetition runs every contender once, the order
	// rotated so none always follows the same neighbour.
	for rep := range maxReps {
		for i := range groups {
			g := groups[(i+rep)%len(groups)]
			if rep >= g.reps {
				continue
			}
			if err := reset(ctx, s.hosts); err != nil {
				return nil, err
			}
			logf("N=%d rep %d/%d: %s", n, rep+1, maxReps, g.name)
			if err := g.run(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	if full && slices.Contains(b.c.only, "operator") {
		if err := b.profiles(ctx, s, r); err != nil {
			return nil, err
		}
		logf("N=%d: steady state under run, %s window, interval %s", n, b.c.steady, b.c.interval)
		st, err := steady(ctx, s, b.c.interval, b.c.steady, "", logf)
		if err != nil {
			return nil, err
		}
		r.Steady = st
		for _, l := range b.c.memLimits {
			logf("N=%d: steady state under run with GOMEMLIMIT=%s", n, l)
			st, err := steady(ctx, s, b.c.interval, b.c.steady, l, logf)
			if err != nil {
				return nil, err
			}
			r.MemLimited = append(r.MemLimited, st)
		}
		if err := b.runProfile(ctx, s, r); err != nil {
			return nil, err
		}
		for _, w := range st.PassWallS {
			r.Samples[opPassWarm] = append(r.Samples[opPassWarm], Sample{WallS: w})
		}
	}
	r.LoadAfter = loadAvg()
	r.summarize()
	return r, nil
}

// operatorGroup: cold, then warm on the result, then 10% drifted.
func (b *bench) operatorGroup(ctx context.Context, s *setup, r *Run, full bool) error {
	if err := b.timedOperator(ctx, s, r, opCold); err != nil {
		return err
	}
	if err := b.timedOperator(ctx, s, r, opWarm); err != nil {
		return err
	}
	if !full {
		return nil
	}
	k, err := drift(ctx, s.hosts)
	if err != nil {
		return err
	}
	r.DriftedNodes = k
	if err := b.timedOperator(ctx, s, r, opDrift); err != nil {
		return err
	}
	if sub := s.subset(); sub != nil {
		return b.subsetCold(ctx, sub, r)
	}
	return nil
}

// subsetNodes is the size of the cold passes over part of a big fleet.
const subsetNodes = 100

// subset is s limited to its first subsetNodes hosts, for the subset
// passes of a fleet of at least ten times that; nil for a smaller one.
func (s *setup) subset() *setup {
	if len(s.hosts) < 10*subsetNodes {
		return nil
	}
	sub := *s
	sub.hosts = s.hosts[:subsetNodes]
	return &sub
}

// subsetCold is a cold pass over sub (the fleet's first subsetNodes hosts), on
// the machine as the full pass finds it (every host's namespace and sshd
// running): the ratio of the two is the operator's own scaling, apart from
// what a bigger fleet costs the shared machine whoever drives it.
func (b *bench) subsetCold(ctx context.Context, sub *setup, r *Run) error {
	var err error
	if sub.spec, err = sub.writeSpecFile("registry-subset.yaml", b.c.interval.String()); err != nil {
		return err
	}
	if err := reset(ctx, sub.hosts); err != nil {
		return err
	}
	return b.timedOperator(ctx, sub, r, opColdSub)
}

func (b *bench) timedOperator(ctx context.Context, s *setup, r *Run, name string) error {
	sample, err := b.operatorRun(ctx, s, name, nil)
	if err != nil {
		return err
	}
	r.Samples[name] = append(r.Samples[name], sample)
	logf("  %-15s wall %.2fs cpu %.2fs rss %d MiB fleet-cpu %.2fs machine-cpu %.2fs ssh %v", name, sample.WallS, sample.CPUS(),
		sample.MaxRSSKiB/1024, sample.FleetCPUS, sample.MachineCPUS, deref(sample.SSHSessions))
	return verify(ctx, s.hosts, b.ca)
}

func deref(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// operatorRun measures one `run --once` and reads its metrics.
func (b *bench) operatorRun(ctx context.Context, s *setup, name string, env []string) (Sample, error) {
	b.seq++
	metricsOut := filepath.Join(s.dir, fmt.Sprintf("%03d-%s.metrics", b.seq, name))
	cmd := s.operatorCmd(ctx, metricsOut, env...)
	sample, err := measure(ctx, cmd, filepath.Join(s.dir, fmt.Sprintf("%03d-%s.log", b.seq, name)), s.holders())
	if err != nil {
		return sample, err
	}
	m, err := os.ReadFile(metricsOut)
	if err != nil {
		return sample, fmt.Errorf("operator metrics: %w", err)
	}
	mt := parseMetrics(string(m))
	ssh, mar := mt["registry_operator_ssh_sessions_total"], mt["registry_operator_marathon_requests_total"]
	sample.SSHSessions, sample.MarathonRequests = &ssh, &mar
	return sample, nil
}

// timed measures one command and checks the fleet converged.
func (b *bench) timed(ctx context.Context, s *setup, r *Run, name string, cmd *exec.Cmd) error {
	b.seq++
	sample, err := measure(ctx, cmd, filepath.Join(s.dir, fmt.Sprintf("%03d-%s.log", b.seq, name)), s.holders())
	if err != nil {
		return err
	}
	r.Samples[name] = append(r.Samples[name], sample)
	logf("  %-15s wall %.2fs cpu %.2fs rss %d MiB (tree %d MiB) fleet-cpu %.2fs machine-cpu %.2fs", name, sample.WallS, sample.CPUS(),
		sample.MaxRSSKiB/1024, sample.TreeRSSKiB/1024, sample.FleetCPUS, sample.MachineCPUS)
	return verify(ctx, s.hosts, b.ca)
}

// profiles takes pprof CPU and allocation profiles of a cold and a warm
// pass (extra, untimed runs: profiling costs a little).
func (b *bench) profiles(ctx context.Context, s *setup, r *Run) error {
	dir := filepath.Join(b.c.out, "benchmarks", "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := reset(ctx, s.hosts); err != nil {
		return err
	}
	for _, pass := range []string{"cold", "warm"} {
		cpu := filepath.Join(dir, fmt.Sprintf("n%d-%s.cpu.pprof", r.Nodes, pass))
		mem := filepath.Join(dir, fmt.Sprintf("n%d-%s.allocs.pprof", r.Nodes, pass))
		logf("N=%d: profiling a %s pass", r.Nodes, pass)
		if _, err := b.operatorRun(ctx, s, "profile-"+pass, []string{
			"REGISTRY_OPERATOR_CPUPROFILE=" + cpu, "REGISTRY_OPERATOR_MEMPROFILE=" + mem,
		}); err != nil {
			return err
		}
		for _, p := range []struct{ kind, file, sample string }{{"cpu", cpu, ""}, {"allocs", mem, "-sample_index=alloc_space"}} {
			top, err := pprofTop(ctx, p.file, p.sample)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(b.c.out, p.file)
			r.Profiles = append(r.Profiles, Profile{Pass: pass, Kind: p.kind, File: rel, Top: top})
		}
	}
	return verify(ctx, s.hosts, b.ca)
}

func pprofTop(ctx context.Context, file, sampleIndex string) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=15"}
	if sampleIndex != "" {
		args = append(args, sampleIndex)
	}
	out, err := exec.CommandContext(ctx, "go", append(args, file)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w: %s", file, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemGiB = float64(kb) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("ssh", "-V").CombinedOutput(); err == nil {
		m.OpenSSH = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("ansible", "--version").Output(); err == nil {
		m.Ansible = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	return m
}

// waitQuiet waits until the 1-minute load average is at most
// BENCH_QUIET_LOAD, for at most BENCH_QUIET_WAIT, and reports how long it
// waited and whether the machine got quiet (nil when not asked to wait).
func (b *bench) waitQuiet(ctx context.Context) (float64, *bool) {
	if b.c.quietLoad <= 0 {
		return 0, nil
	}
	t0 := time.Now()
	quiet := loadAvg()[0] <= b.c.quietLoad
	if !quiet {
		logf("waiting up to %s for the load average to fall to %.2f (now %.2f)", b.c.quietWait, b.c.quietLoad, loadAvg()[0])
	}
	for !quiet && time.Since(t0) < b.c.quietWait && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		quiet = loadAvg()[0] <= b.c.quietLoad
	}
	if !quiet {
		logf("the machine did not get quiet (load %.2f); measuring anyway", loadAvg()[0])
	}
	return time.Since(t0).Seconds(), &quiet
}

func loadAvg() [3]float64 {
	var l [3]float64
	b, _ := os.ReadFile("/proc/loadavg")
	fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	return l
}

// runProfile profiles the long-running operator with every node in sync:
// the first pass, then a minute of in-sync passes (5 s interval) over kept
// connections.
func (b *bench) runProfile(ctx context.Context, s *setup, r *Run) error {
	spec, err := s.writeSpecFile("registry-profile.yaml", "5s")
	if err != nil {
		return err
	}
	dir := filepath.Join(b.c.out, "benchmarks", "profiles")
	cpu := filepath.Join(dir, fmt.Sprintf("n%d-run.cpu.pprof", r.Nodes))
	mem := filepath.Join(dir, fmt.Sprintf("n%d-run.allocs.pprof", r.Nodes))
	logf("N=%d: profiling `run` (interval 5s) for 60s", r.Nodes)
	lf, err := os.Create(filepath.Join(s.dir, "run-profile.log"))
	if err != nil {
		return err
	}
	defer lf.Close()
	port, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, s.operator, "run", "--config", spec, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(), "REGISTRY_OPERATOR_CPUPROFILE="+cpu, "REGISTRY_OPERATOR_MEMPROFILE="+mem)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return err
	}
	// The minute of in-sync passes starts once the first pass (which dials
	// every node) is done.
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var a apiStatus
		if err := getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/api/status", port), &a); err == nil && a.InSync {
			if _, _, ok := a.lastPass(); ok {
				break
			}
		}
		time.Sleep(time.Second)
	}
	select {
	case <-ctx.Done():
	case <-time.After(60 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("operator run for the profile: %w\n%s", err, tail(lf.Name(), 10))
	}
	for _, p := range []struct{ kind, file, sample string }{{"cpu", cpu, ""}, {"allocs", mem, "-sample_index=alloc_space"}} {
		top, err := pprofTop(ctx, p.file, p.sample)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(b.c.out, p.file)
		r.Profiles = append(r.Profiles, Profile{Pass: "run", Kind: p.kind, File: rel, Top: top})
	}
	cum, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=400", cpu).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -cum %s: %w", cpu, err)
	}
	r.RunHotspots = hotspots(string(cum), 6)
	return nil
}

// hotspots picks the project's own functions from a `pprof -top -cum`
// listing, below the manager's worker loop: where a pass's CPU goes.
func hotspots(listing string, n int) []string {
	var out []string
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(f[5], "registry-operator/registry-operator/") {
			continue
		}
		fn := strings.TrimPrefix(strings.Join(f[5:], " "), "github.com/registry-operator/registry-operator/")
		if strings.HasPrefix(fn, "internal/manager.") {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s of CPU)", fn, f[4]))
		if len(out) == n {
			break
		}
	}
	return out
}
