package memlimit

import (
	"runtime/debug"
	"strconv"
)

// RunGCPercent is the collector's GOGC for the long-running operator
// (`run` without --once) when the environment sets none.
//
// What `run` keeps is mostly per agent and lives as long as the agent: an
// SSH connection with its SFTP channel, caches, the state the status page
// shows. A resync round allocates a few KB per agent on top. At Go's
// default of 100 the heap grows to twice what is kept before a
// collection: at 1000 agents about 30 MB more than the operator needs,
// all garbage. Measured at 1000 agents in sync, 30 s rounds, over three
// minutes (docs/architecture.md, "What a kept connection holds"):
//
//	GOGC  RSS      collections  CPU (share of one core)
//	 100  92 MiB    2           0.90%
//	  50  76 MiB    3           0.83%
//	  25  68 MiB    9           0.85%
//	  15  66 MiB   15           0.97%
//	  10  65 MiB   22           1.14%
//
// Each collection scans every kept connection's goroutine stacks and
// buffers (about 30 ms of CPU at 1000 agents), and how many come depends
// on the garbage of the round and of the first pass: `make bench` saw 13
// collections and 1.06% of a core at 25 where the run above saw 9 and
// 0.85%. 50 keeps most of the saving with collections to spare for the
// steady state's 1% budget. `run --once` keeps Go's default: it exits
// after one pass.
const RunGCPercent = 50

// Where the collector's GOGC came from.
const (
	// FromGOGCEnv: GOGC was set, and the runtime applied it ("off"
	// included).
	FromGOGCEnv Source = "GOGC"
	// FromDefault: the caller's default (RunGCPercent for `run`).
	FromDefault Source = "default"
)

// GCSetting is the collector's GOGC and why. Percent is -1 for GOGC=off.
type GCSetting struct {
	Source  Source
	Percent int
}

// DecideGC picks the GOGC: an explicit GOGC wins (the runtime has applied
// it; its value is reported as parsed the way the runtime does), otherwise
// def.
func DecideGC(gogc string, def int) GCSetting {
	if gogc == "" {
		return GCSetting{Source: FromDefault, Percent: def}
	}
	if gogc == "off" {
		return GCSetting{Source: FromGOGCEnv, Percent: -1}
	}
	n, err := strconv.ParseInt(gogc, 10, 32)
	if err != nil {
		n = 100 // what the runtime uses for a value it cannot parse
	}
	return GCSetting{Source: FromGOGCEnv, Percent: int(n)}
}

// ConfigureGC applies DecideGC for this process: with no GOGC in the
// environment (from getenv) the collector runs at def.
func ConfigureGC(getenv func(string) string, def int) GCSetting {
	s := DecideGC(getenv("GOGC"), def)
	if s.Source == FromDefault {
		debug.SetGCPercent(def)
	}
	return s
}
