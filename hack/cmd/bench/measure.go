package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/procstat"
)

// Sample is one measured run of one contender.
type Sample struct {
	WallS float64 `json:"wallS"`
	// UserS and SysS cover the contender's whole process tree: every
	// descendant it waited for (rusage) plus daemonised helpers such as
	// OpenSSH ControlPersist masters, which the bench adopts as a child
	// subreaper, ends after the run and reaps.
	UserS float64 `json:"userS"`
	SysS  float64 `json:"sysS"`
	// MaxRSSKiB is the largest single process's peak: its VmHWM, read with
	// the tree every 250 ms (a process's last sample holds its peak up to
	// then). Not rusage's ru_maxrss: a child of this process reports at
	// least this process's own peak there (Linux records the address space
	// it leaves at exec, which a child started from Go shares), so every
	// contender would read as big as the bench. TreeRSSKiB is the peak of
	// the summed RSS of the whole tree, from the same samples.
	MaxRSSKiB  int64 `json:"maxRSSKiB"`
	TreeRSSKiB int64 `json:"treeRSSKiB"`
	// MachineCPUS is the CPU time every process on the machine used during
	// the run (/proc/stat), sshd servers and kernel included.
	MachineCPUS float64 `json:"machineCPUS"`
	// StealS is the time the hypervisor ran something else while this
	// machine's CPUs had work (/proc/stat's steal, all CPUs), during the
	// run: a slower repetition with steal is the host's, not the run's.
	StealS float64 `json:"stealS"`
	// FleetCPUS is the CPU time of every process on the fleet's hosts used
	// during the run: sshd, sftp-server, remote shells and Python. Unlike
	// MachineCPUS it excludes other tenants of a shared machine.
	FleetCPUS float64 `json:"fleetCPUS"`
	Load1     float64 `json:"load1"` // 1-minute load average when the run started
	// From the operator's own metrics (operator runs only).
	SSHSessions      *float64 `json:"sshSessions,omitempty"`
	MarathonRequests *float64 `json:"marathonRequests,omitempty"`
}

// CPUS is user+sys of the contender's tree.
func (s Sample) CPUS() float64 { return s.UserS + s.SysS }

// TotalCPUS is the contender's and the fleet's CPU together.
func (s Sample) TotalCPUS() float64 { return s.CPUS() + s.FleetCPUS }

const prSetChildSubreaper = 36

// becomeSubreaper makes orphaned descendants (daemonised ssh masters)
// children of this process, so their CPU time can be counted.
func becomeSubreaper() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e)
	}
	return nil
}

// children lists the direct children of pid over all its threads.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// treeRSS sums the resident set of the trees rooted at roots, in KiB, and
// returns the largest VmHWM among them.
func treeRSS(roots []int) (sum, hwm int64) {
	page := int64(os.Getpagesize() / 1024)
	seen := map[int]bool{}
	stack := append([]int(nil), roots...)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid)); err == nil {
			if f := strings.Fields(string(b)); len(f) > 1 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				sum += n * page
			}
		}
		if st, err := procStatusKiB(pid); err == nil {
			hwm = max(hwm, st["VmHWM"])
		}
		stack = append(stack, children(pid)...)
	}
	return sum, hwm
}

// machineBusy is the CPU time all CPUs spent not idle, and of it the time
// stolen by the hypervisor, in seconds, from /proc/stat.
func machineBusy() (busy, steal float64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 9 && fs[0] == "cpu" {
			return parseCPULine(fs)
		}
	}
	return 0, 0
}

// parseCPULine reads the "cpu" line's fields: user nice system idle iowait
// irq softirq steal, in USER_HZ (100 per second).
func parseCPULine(fs []string) (busy, steal float64) {
	var b int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(fs[i], 10, 64)
		b += v
	}
	st, _ := strconv.ParseInt(fs[8], 10, 64)
	return float64(b) / 100, float64(st) / 100
}

// fleetCPU is the CPU time, in seconds, of everything that ran on the hosts
// whose PID-namespace inits are holders: live processes' own time plus what
// they collected from children they reaped (a process is either alive and
// walked, or reaped and counted in its reaper's cutime/cstime).
func fleetCPU(holders []int) float64 {
	var ticks int64
	stack := append([]int(nil), holders...)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		ticks += int64(st.UTime + st.STime + st.CUTime + st.CSTime)
		stack = append(stack, children(pid)...)
	}
	return float64(ticks) / 100
}

func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// measure runs cmd to completion and measures it. Output goes to logPath.
// A non-zero exit is an error carrying the log's tail.
func measure(ctx context.Context, cmd *exec.Cmd, logPath string, holders []int) (Sample, error) {
	self := os.Getpid()
	before := map[int]bool{}
	for _, p := range children(self) {
		before[p] = true
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return Sample{}, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	s := Sample{Load1: load1()}
	m0, st0 := machineBusy()
	f0 := fleetCPU(holders)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	main := cmd.Process.Pid
	adopted := func() []int {
		var out []int
		for _, p := range children(self) {
			if !before[p] && p != main {
				out = append(out, p)
			}
		}
		return out
	}
	var peak, peakHWM int64
	var mu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			rss, hwm := treeRSS(append([]int{main}, adopted()...))
			mu.Lock()
			peak, peakHWM = max(peak, rss), max(peakHWM, hwm)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	waitErr := cmd.Wait()
	s.WallS = time.Since(t0).Seconds()
	close(stop)
	<-sampled
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.UserS += tv(ru.Utime)
		s.SysS += tv(ru.Stime)
	}
	// Daemonised leftovers (ControlPersist masters) are part of the run:
	// end them and count what they used.
	for _, p := range adopted() {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	for _, p := range adopted() {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = syscall.Wait4(p, &ws, 0, &ru)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(p, syscall.SIGKILL)
			<-done
		}
		s.UserS += tv(ru.Utime)
		s.SysS += tv(ru.Stime)
	}
	m1, st1 := machineBusy()
	s.MachineCPUS, s.StealS = m1-m0, st1-st0
	// Connections closed at exit: give sshd a moment to reap its children.
	time.Sleep(300 * time.Millisecond)
	s.FleetCPUS = fleetCPU(holders) - f0
	mu.Lock()
	s.TreeRSSKiB, s.MaxRSSKiB = peak, peakHWM
	mu.Unlock()
	if waitErr != nil {
		return s, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), waitErr, tail(logPath, 15))
	}
	return s, ctx.Err()
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + string(bytes.Join(lines, []byte("\n    ")))
}

// procCPU returns utime+stime (seconds) and VmRSS/VmHWM (KiB) of one process.
func procCPU(pid int) (cpu float64, rss, hwm int64, err error) {
	ps, err := procstat.Read(pid)
	if err != nil {
		return 0, 0, 0, err
	}
	cpu = float64(ps.UTime+ps.STime) / 100
	st, err := procStatusKiB(pid)
	return cpu, st["VmRSS"], st["VmHWM"], err
}

// procStatusKiB reads the kB fields of /proc/PID/status (VmRSS, VmHWM,
// RssFile, ...), by name.
func procStatusKiB(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// writeFile writes data under dir, creating dir.
func writeFile(dir, name string, data []byte, perm os.FileMode) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, data, perm)
}
