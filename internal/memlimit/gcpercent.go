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
// all garbage. Lower values trade that for collections, each of which
// marks every kept connection's buffers and scans its goroutine stacks
// (tens of ms of CPU at 1000 agents); docs/architecture.md has the
// measured RSS and CPU per GOGC. 50 keeps most of the saving with
// collections to spare for the steady state's 1% of a core.
//
// `run --once` keeps Go's default: it exits after one pass, and that pass
// (every handshake's garbage) is where collections cost most. At 1000
// agents one took 150-250 ms of CPU, mostly idle-time marking on cores the
// agents' sshd needed, and GOGC 50 made the cold pass's CPU 15% higher.
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
