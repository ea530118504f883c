// Command registry-operator keeps a private Docker registry on a
// Mesos/Marathon cluster correct. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/memlimit"
	"github.com/registry-operator/registry-operator/internal/operator"
)

// Set by the Makefile through -ldflags.
var version = "dev"

const usage = `registry-operator keeps a private Docker registry on Marathon correct.

Usage:
  registry-operator run      --config FILE [--once] [--listen ADDR] [-v N]
  registry-operator plan     --config FILE    # exit 0 in sync, 2 changes pending, 1 error
  registry-operator validate --config FILE    # exit 0 valid, 1 invalid (errors on stderr)
  registry-operator status   --addr HOST:PORT # exit 0 in sync, 1 otherwise
  registry-operator version

--config defaults to $REGISTRY_OPERATOR_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "plan":
		return cmdPlan(args, stdout, stderr)
	case "validate":
		return cmdValidate(args, stdout, stderr)
	case "status":
		return cmdStatus(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "registry-operator", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return 1
}

type common struct {
	config    string
	verbosity int
}

func flags(name string, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	fs.StringVar(&c.config, "config", os.Getenv("REGISTRY_OPERATOR_CONFIG"), "path of the RegistrySpec YAML file (env REGISTRY_OPERATOR_CONFIG)")
	fs.IntVar(&c.verbosity, "v", 0, "log verbosity (0 = info, higher = more detail)")
	return fs, c
}

func (c *common) check(stderr io.Writer) bool {
	if c.config == "" {
		fmt.Fprintln(stderr, "--config: no config file given; pass --config FILE or set REGISTRY_OPERATOR_CONFIG")
		return false
	}
	return true
}

func logger(w io.Writer, v int) logr.Logger {
	return logr.FromSlogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.Level(-v)}))
}

// setMemoryLimit gives Go's collector a soft limit below the container's
// memory limit (Marathon's mem), unless GOMEMLIMIT sets one (GOMEMLIMIT=off:
// none). Its value is also on /metrics as go_gc_gomemlimit_bytes.
func setMemoryLimit(log logr.Logger) {
	s, err := memlimit.Configure(os.Getenv, os.DirFS("/"))
	if err != nil {
		log.Error(err, "container memory limit not read: Go's collector runs without a soft limit; set GOMEMLIMIT to give one")
		return
	}
	log.Info("memory limit", "source", s.Source, "softLimitBytes", s.Bytes, "cgroupLimitBytes", s.Cgroup, "cgroupFile", s.File)
}

// signalContext is cancelled on the first SIGINT/SIGTERM; a second one exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func cmdRun(args []string, stderr io.Writer) int {
	fs, c := flags("run", stderr)
	once := fs.Bool("once", false, "run every enabled reconciler once and exit: 0 when all are in sync, 1 otherwise")
	listen := fs.String("listen", "", "address serving /, /api/status, /metrics, /healthz and /readyz (e.g. :9090)")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --once: give up after this long")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM: how long in-flight work may finish")
	if fs.Parse(args) != nil || !c.check(stderr) {
		return 1
	}
	log := logger(stderr, c.verbosity)
	setMemoryLimit(log)
	if !*once {
		gc := memlimit.ConfigureGC(os.Getenv, memlimit.RunGCPercent)
		log.Info("garbage collector", "source", gc.Source, "gogc", gc.Percent)
	}
	op, err := operator.New(operator.Options{ConfigPath: c.config, Listen: *listen, Once: *once,
		Timeout: *timeout, Grace: *grace, Version: version, Log: log})
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	ctx, cancel := signalContext()
	defer cancel()
	log.Info("starting", "version", version, "config", c.config, "once", *once)
	prof := startProfiling(log)
	err = op.Run(ctx)
	prof.finish(op.Handler())
	var nis *operator.NotInSyncError
	switch {
	case errors.As(err, &nis):
		for _, it := range nis.Items {
			fmt.Fprintln(stderr, "not in sync:", it)
		}
		return 1
	case err != nil:
		log.Error(err, "operator stopped")
		return 1
	}
	log.Info("stopped")
	return 0
}

func cmdPlan(args []string, stdout, stderr io.Writer) int {
	fs, c := flags("plan", stderr)
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on checks that take longer than this")
	if fs.Parse(args) != nil || !c.check(stderr) {
		return 1
	}
	ctx, cancel := signalContext()
	defer cancel()
	// The plan itself reports every error; logs only with -v.
	log := logr.Discard()
	if c.verbosity > 0 {
		log = logger(stderr, c.verbosity-1)
	}
	err := operator.Plan(ctx, operator.Options{ConfigPath: c.config, Timeout: *timeout, Version: version, Log: log}, stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, operator.ErrChangesPending):
		return 2
	}
	printLoadError(stderr, err)
	return 1
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs, c := flags("validate", stderr)
	if fs.Parse(args) != nil || !c.check(stderr) {
		return 1
	}
	r, err := v1alpha1.Load(c.config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	for _, w := range v1alpha1.Warnings(r) {
		fmt.Fprintln(stderr, "WARNING:", w)
	}
	fmt.Fprintf(stdout, "%s: valid\n", c.config)
	return 0
}

func printLoadError(stderr io.Writer, err error) {
	var fe v1alpha1.FieldErrors
	if errors.As(err, &fe) {
		for _, e := range fe {
			fmt.Fprintln(stderr, e.String())
		}
		return
	}
	fmt.Fprintln(stderr, "error:", err)
}
