package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Steady is the operator under `run` with every node in sync.
type Steady struct {
	Nodes      int     `json:"nodes"`
	IntervalS  float64 `json:"intervalS"`
	WindowS    float64 `json:"windowS"`
	CPUS       float64 `json:"cpuS"`        // utime+stime over the window
	CPUSPerH   float64 `json:"cpuSPerHour"` // CPUS scaled to an hour
	CorePct    float64 `json:"corePct"`     // percent of one core
	RSSKiB     int64   `json:"rssKiB"`      // at the end of the window
	PeakRSSKiB int64   `json:"peakRSSKiB"`  // VmHWM, the whole run included
	// RSSFileKiB is the part of RSSKiB mapped from files (the binary).
	RSSFileKiB int64   `json:"rssFileKiB,omitempty"`
	Passes     float64 `json:"passes"`     // discovery reconciles in the window
	SSHPerPass float64 `json:"sshPerPass"` // sessions opened per pass in the window
	MarPerPass float64 `json:"marathonPerPass"`
	// PassWallS are the wall times of in-sync passes over kept connections:
	// from the pass's discovery reconcile to the last node check.
	PassWallS []float64 `json:"passWallS"`
	// FirstPassS is from the process's start to every node in sync: the
	// first pass, which dials every node.
	FirstPassS  float64 `json:"firstPassS"`
	MachineCPUS float64 `json:"machineCPUS"` // whole machine over the window
	StealS      float64 `json:"stealS"`      // of it, stolen by the hypervisor
	FleetCPUS   float64 `json:"fleetCPUS"`   // the hosts' sshd and sftp-server over the window
	Load1       float64 `json:"load1"`
	// The Go runtime's own account at the end of the window (/metrics):
	// heap spans in use, goroutine stacks, the collector's GOGC and how
	// many collections ran in the window.
	HeapInuseB  float64 `json:"heapInuseBytes,omitempty"`
	StackInuseB float64 `json:"stackInuseBytes,omitempty"`
	Goroutines  float64 `json:"goroutines,omitempty"`
	GOGC        float64 `json:"gogc,omitempty"`
	GCs         float64 `json:"gcs,omitempty"`
	// MemLimit is the GOMEMLIMIT the operator ran with; empty: none (the
	// operator's own default).
	MemLimit string `json:"memLimit,omitempty"`
}

type apiStatus struct {
	InSync      bool `json:"inSync"`
	Reconcilers []struct {
		Name    string    `json:"name"`
		LastRun time.Time `json:"lastRun"`
	} `json:"reconcilers"`
	Nodes []struct {
		Concerns map[string]struct {
			InSync  bool      `json:"inSync"`
			Checked time.Time `json:"checked"`
		} `json:"concerns"`
	} `json:"nodes"`
}

// lastPass is the wall time of the latest complete pass, if every node was
// checked after it began.
func (a *apiStatus) lastPass() (start time.Time, wall float64, ok bool) {
	for _, r := range a.Reconcilers {
		if r.Name == "discovery" {
			start = r.LastRun
		}
	}
	if start.IsZero() || len(a.Nodes) == 0 {
		return start, 0, false
	}
	var end time.Time
	for _, n := range a.Nodes {
		if len(n.Concerns) == 0 {
			return start, 0, false
		}
		for _, c := range n.Concerns {
			if c.Checked.Before(start) {
				return start, 0, false
			}
			if c.Checked.After(end) {
				end = c.Checked
			}
		}
	}
	return start, end.Sub(start).Seconds(), true
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// scrape reads counters from /metrics (sums over labels).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	body, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(body)), nil
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[name] = v
		if j := strings.IndexByte(name, '{'); j > 0 {
			out[name[:j]] += v
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// steady runs the operator under `run` on hosts already in sync and
// measures its cost over window, reading /api/status once per interval
// (as a monitor would) to time each pass. A memLimit other than "" runs it
// with that GOMEMLIMIT.
func steady(ctx context.Context, s *setup, interval, window time.Duration, memLimit string, logf func(string, ...any)) (*Steady, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	logPath := filepath.Join(s.dir, "steady.log")
	if memLimit != "" {
		logPath = filepath.Join(s.dir, "steady-"+memLimit+".log")
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(s.operator, "run", "--config", s.spec, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = lf, lf
	if memLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+memLimit)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	pid := cmd.Process.Pid
	started := time.Now()
	st := &Steady{Nodes: len(s.hosts), IntervalS: interval.Seconds(), MemLimit: memLimit}

	// The first pass dials every node.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var a apiStatus
		if err := getJSON(ctx, base+"/api/status", &a); err == nil && a.InSync {
			if _, _, ok := a.lastPass(); ok {
				st.FirstPassS = time.Since(started).Seconds()
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("operator not in sync after 10 minutes; see %s\n%s", logPath, tail(logPath, 10))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	logf("steady: first pass %.2fs; measuring for %s", st.FirstPassS, window)
	time.Sleep(2 * time.Second)
	m0, err := scrape(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	c0, _, _, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	mach0, steal0 := machineBusy()
	fleet0 := fleetCPU(s.holders())
	st.Load1 = load1()
	t0 := time.Now()
	var lastStart time.Time
	for time.Since(t0) < window {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(interval, window-time.Since(t0))):
		}
		var a apiStatus
		if err := getJSON(ctx, base+"/api/status", &a); err != nil {
			return nil, err
		}
		if start, wall, ok := a.lastPass(); ok && start.After(lastStart) && start.After(t0.Add(-time.Second)) {
			st.PassWallS = append(st.PassWallS, wall)
			lastStart = start
		}
	}
	c1, rss, hwm, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	el := time.Since(t0).Seconds()
	mach1, steal1 := machineBusy()
	st.MachineCPUS, st.StealS = mach1-mach0, steal1-steal0
	st.FleetCPUS = fleetCPU(s.holders()) - fleet0
	m1, err := scrape(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	st.WindowS = el
	st.CPUS = c1 - c0
	st.CPUSPerH = st.CPUS / el * 3600
	st.CorePct = st.CPUS / el * 100
	st.RSSKiB, st.PeakRSSKiB = rss, hwm
	if ps, err := procStatusKiB(pid); err == nil {
		st.RSSFileKiB = ps["RssFile"]
	}
	st.HeapInuseB, st.StackInuseB = m1["go_memstats_heap_inuse_bytes"], m1["go_memstats_stack_inuse_bytes"]
	st.Goroutines, st.GOGC = m1["go_goroutines"], m1["go_gc_gogc_percent"]
	st.GCs = m1["go_gc_duration_seconds_count"] - m0["go_gc_duration_seconds_count"]
	key := `registry_operator_reconcile_total{reconciler="discovery",result="success"}`
	st.Passes = m1[key] - m0[key]
	if st.Passes > 0 {
		st.SSHPerPass = (m1["registry_operator_ssh_sessions_total"] - m0["registry_operator_ssh_sessions_total"]) / st.Passes
		st.MarPerPass = (m1["registry_operator_marathon_requests_total"] - m0["registry_operator_marathon_requests_total"]) / st.Passes
	}
	return st, nil
}
