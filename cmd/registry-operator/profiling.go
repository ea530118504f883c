package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/go-logr/logr"
)

// Profiling and measurement hooks for `make bench` (docs/benchmarks.md),
// switched on by environment variables so they stay out of the usage text:
//
//	REGISTRY_OPERATOR_CPUPROFILE=FILE   pprof CPU profile of the whole run
//	REGISTRY_OPERATOR_MEMPROFILE=FILE   pprof allocation profile, written at exit
//	REGISTRY_OPERATOR_METRICS_OUT=FILE  the /metrics page as it is at exit
const (
	envCPUProfile = "REGISTRY_OPERATOR_CPUPROFILE"
	envMemProfile = "REGISTRY_OPERATOR_MEMPROFILE"
	envMetricsOut = "REGISTRY_OPERATOR_METRICS_OUT"
)

func init() {
	if os.Getenv(envMemProfile) != "" {
		// Finer than the 512 KiB default (one pass allocates only tens of
		// MiB), and set before anything allocates, as runtime asks.
		runtime.MemProfileRate = 64 << 10
		return
	}
	// Nothing reads a heap profile otherwise, and sampling is not free: at
	// the default rate the runtime's table of sampled stacks grows to about
	// 1.4 MiB under `run` holding 1000 agents.
	runtime.MemProfileRate = 0
}

type profiling struct {
	log     logr.Logger
	cpu     *os.File
	mem     string
	metrics string
}

// startProfiling starts what the environment asks for. Failures are logged,
// never fatal: a profile is never worth refusing to reconcile.
func startProfiling(log logr.Logger) *profiling {
	p := &profiling{log: log, mem: os.Getenv(envMemProfile), metrics: os.Getenv(envMetricsOut)}
	if path := os.Getenv(envCPUProfile); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Error(err, "cpu profile not started", "file", path)
			if f != nil {
				f.Close()
			}
		} else {
			p.cpu = f
		}
	}
	return p
}

// finish writes the profiles and, given the operator's handler, its metrics.
func (p *profiling) finish(h http.Handler) {
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil {
			p.log.Error(err, "cpu profile not written")
		}
	}
	if p.mem != "" {
		if err := writeProfile(p.mem, "allocs"); err != nil {
			p.log.Error(err, "allocation profile not written", "file", p.mem)
		}
	}
	if p.metrics != "" && h != nil {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if err := os.WriteFile(p.metrics, rec.Body.Bytes(), 0o644); err != nil {
			p.log.Error(err, "metrics not written", "file", p.metrics)
		}
	}
}

func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
