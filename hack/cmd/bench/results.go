package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
)

// Results is docs/benchmarks.json: one Run per fleet size. A run of `make
// bench` replaces the sizes it measured and keeps the others, so the
// default run (100 nodes) and the 1000-node run share one report.
type Results struct {
	Schema int             `json:"schema"`
	Runs   map[string]*Run `json:"runs"`
}

// Run is every measurement at one fleet size.
type Run struct {
	Nodes int    `json:"nodes"`
	Date  string `json:"date"`
	// Full: the main size of its run (all contenders, drift, steady state,
	// profiles); otherwise a scaling point (cold passes, fewer repetitions).
	Full         bool                `json:"full"`
	Reps         int                 `json:"reps"`
	SlowReps     int                 `json:"slowReps"`
	DriftedNodes int                 `json:"driftedNodes,omitempty"`
	Machine      Machine             `json:"machine"`
	LoadBefore   [3]float64          `json:"loadBefore"`
	LoadAfter    [3]float64          `json:"loadAfter"`
	Samples      map[string][]Sample `json:"samples"`
	Summary      map[string]Summary  `json:"summary"`
	Steady       *Steady             `json:"steady,omitempty"`
	// MemLimited is the same steady state again under each of the
	// BENCH_MEMLIMITS soft memory limits: what holding RSS down costs the
	// collector.
	MemLimited []*Steady `json:"memLimited,omitempty"`
	Profiles   []Profile `json:"profiles,omitempty"`
	// RunHotspots are the operator's own functions with the most
	// cumulative CPU under `run` with every node in sync.
	RunHotspots []string `json:"runHotspots,omitempty"`
	// Carried names the contenders this run left out (BENCH_ONLY) whose
	// samples come from an earlier run at the same size, with that run's
	// date: Ansible takes most of an hour, and its cost does not depend on
	// the operator's code.
	Carried map[string]string `json:"carried,omitempty"`
	// QuietWaitS is how long the run waited for the machine's load to
	// settle before measuring; Quiet whether it did (see BENCH_QUIET_LOAD).
	QuietWaitS float64 `json:"quietWaitS,omitempty"`
	Quiet      *bool   `json:"quiet,omitempty"`
}

// carryFrom copies from prev (an earlier run at the same size) the samples
// of every contender r did not measure, recording when they were measured.
func (r *Run) carryFrom(prev *Run) {
	if prev == nil || prev.Nodes != r.Nodes || !prev.Full {
		return
	}
	for name, ss := range prev.Samples {
		if _, ok := r.Samples[name]; ok || len(ss) == 0 || !carriable[name] {
			continue
		}
		r.Samples[name] = ss
		if r.Carried == nil {
			r.Carried = map[string]string{}
		}
		r.Carried[name] = prev.Date
		if d, ok := prev.Carried[name]; ok {
			r.Carried[name] = d
		}
	}
	r.summarize()
}

// carriable are the contenders whose cost does not depend on the
// operator's code; the operator's own passes are never carried.
var carriable = map[string]bool{ansCold: true, ansWarm: true, sshSeq: true, sshXargs: true, sshXargsSub: true}

// Machine describes where a run was measured.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemGiB    float64 `json:"memGiB"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"goVersion"`
	OpenSSH   string  `json:"openssh"`
	Ansible   string  `json:"ansible"`
}

// Summary is one contender at one size: min/median/max of the wall time,
// medians of the rest, and the worst peak memory.
type Summary struct {
	N              int      `json:"n"`
	WallMinS       float64  `json:"wallMinS"`
	WallMedS       float64  `json:"wallMedianS"`
	WallMaxS       float64  `json:"wallMaxS"`
	CPUMedS        float64  `json:"cpuMedianS"`
	MachineCPUMedS float64  `json:"machineCPUMedianS"`
	FleetCPUMedS   float64  `json:"fleetCPUMedianS"`
	TotalCPUMedS   float64  `json:"totalCPUMedianS"` // contender + fleet
	MaxRSSKiB      int64    `json:"maxRSSKiB"`
	TreeRSSKiB     int64    `json:"treeRSSKiB"`
	SSHSessions    *float64 `json:"sshSessions,omitempty"`
	MarathonReqs   *float64 `json:"marathonRequests,omitempty"`
}

// Profile is one pprof file and its top entries.
type Profile struct {
	Pass string `json:"pass"` // cold, warm
	Kind string `json:"kind"` // cpu, allocs
	File string `json:"file"` // relative to the report
	Top  string `json:"top"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *Run) summarize() {
	r.Summary = map[string]Summary{}
	for name, ss := range r.Samples {
		var wall, cpu, mach, fleet, total, sshs, mars []float64
		sum := Summary{N: len(ss)}
		for _, s := range ss {
			wall = append(wall, s.WallS)
			cpu = append(cpu, s.CPUS())
			mach = append(mach, s.MachineCPUS)
			fleet = append(fleet, s.FleetCPUS)
			total = append(total, s.TotalCPUS())
			sum.MaxRSSKiB = max(sum.MaxRSSKiB, s.MaxRSSKiB)
			sum.TreeRSSKiB = max(sum.TreeRSSKiB, s.TreeRSSKiB)
			if s.SSHSessions != nil {
				sshs = append(sshs, *s.SSHSessions)
				mars = append(mars, *s.MarathonRequests)
			}
		}
		sum.WallMinS, sum.WallMaxS, sum.WallMedS = slices.Min(wall), slices.Max(wall), median(wall)
		sum.CPUMedS, sum.MachineCPUMedS = median(cpu), median(mach)
		sum.FleetCPUMedS, sum.TotalCPUMedS = median(fleet), median(total)
		if len(sshs) > 0 {
			a, b := median(sshs), median(mars)
			sum.SSHSessions, sum.MarathonReqs = &a, &b
		}
		r.Summary[name] = sum
	}
	if st := r.Steady; st != nil {
		s := r.Summary[opPassWarm]
		s.SSHSessions, s.MarathonReqs = &st.SSHPerPass, &st.MarPerPass
		r.Summary[opPassWarm] = s
	}
}

func loadResults(path string) (*Results, error) {
	res := &Results{Schema: 1, Runs: map[string]*Run{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("%s: %w (move it away to start afresh)", path, err)
	}
	if res.Runs == nil {
		res.Runs = map[string]*Run{}
	}
	return res, nil
}

// sizes lists the measured fleet sizes in ascending order.
func (r *Results) sizes() []int {
	var out []int
	for k := range r.Runs {
		if n, err := strconv.Atoi(k); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

func (r *Results) run(n int) *Run { return r.Runs[strconv.Itoa(n)] }

func (r *Results) summary(n int, name string) (Summary, bool) {
	run := r.run(n)
	if run == nil {
		return Summary{}, false
	}
	s, ok := run.Summary[name]
	return s, ok && s.N > 0
}
