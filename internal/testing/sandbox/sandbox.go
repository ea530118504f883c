package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// Defaults for Options fields left zero.
const (
	DefaultAgents   = 3
	DefaultInterval = 5 * time.Second
	DefaultBaseDir  = "/run/registry-operator-sandbox"
	// DefaultPrefix names the fleet's namespaces and links (rsb-<run>-<i>).
	DefaultPrefix = "rsb"
	// RegistryPort is the registry's containerPort; the emulator binds it
	// on the agent's address, so registry.address is <agent 0 IP>:5000.
	RegistryPort = 5000
	// AppID is the registry app's id in config/sandbox.yaml.
	AppID = "/registry"
	// ConntrackKey is the sysctl the conntrack reconciler manages.
	ConntrackKey = "net.netfilter.nf_conntrack_tcp_be_liberal"
)

// Options configure a sandbox. All fields are optional.
type Options struct {
	// Agents is the number of agents to start with (default 3).
	Agents int
	// Name is a label for the sandbox's directory (lowercase letters,
	// digits and dashes; default "sb"). The demo uses "demo".
	Name string
	// BaseDir holds one directory per sandbox (default DefaultBaseDir). It
	// must be root-owned and not group/world writable.
	BaseDir string
	// Prefix names the fleet's kernel objects (1-4 lowercase letters).
	Prefix string
	// Template is the config template (default: config/sandbox.yaml of the
	// module the working directory is in).
	Template string
	// OperatorBinary is the registry-operator binary. Empty: built from the
	// module's source into the sandbox directory (go build).
	OperatorBinary string
	// OperatorListen is where the operator serves /metrics and /api/status
	// (default 127.0.0.1:<free port>). It stays the same across restarts.
	OperatorListen string
	// NoOperator leaves the operator stopped after Start (StartOperator
	// starts it), for tests that prepare the cluster first.
	NoOperator bool
	// Interval is reconcile.interval (default 5s).
	Interval time.Duration
	// CheckInterval is how often the emulator health-checks tasks (1s).
	CheckInterval time.Duration
	// Edit changes the generated config before the operator first reads it.
	Edit func(yaml []byte) ([]byte, error)
	// Auth turns on htpasswd auth and pull credentials in the generated
	// config (EnableAuth), as config/sandbox.yaml's commented auth block does.
	Auth bool
	// HandleSignals closes the sandbox and exits on SIGINT/SIGTERM, so an
	// interrupted test leaves nothing behind.
	HandleSignals bool
	// Logf receives progress lines (default: discarded).
	Logf func(format string, args ...any)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

func (o *Options) setDefaults() error {
	if o.Agents == 0 {
		o.Agents = DefaultAgents
	}
	if o.Agents < 1 {
		return fmt.Errorf("sandbox: Options.Agents is %d, want at least 1 (agent 0 runs the registry)", o.Agents)
	}
	if o.Name == "" {
		o.Name = "sb"
	}
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("sandbox: Options.Name %q: use lowercase letters, digits and dashes", o.Name)
	}
	if o.BaseDir == "" {
		o.BaseDir = DefaultBaseDir
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Sandbox is a running sandbox. Its methods are safe for concurrent use.
type Sandbox struct {
	// Dir holds every file of the sandbox.
	Dir string
	// Fleet is the agents' test fleet.
	Fleet *testfleet.Fleet
	// Sim is the Marathon (and Mesos master) emulator.
	Sim *marathonsim.Server
	// MarathonURL is the emulator's base URL; Mesos is served there too.
	MarathonURL string
	// RegistryAddress is registry.address: <agent 0 IP>:5000.
	RegistryAddress string

	opts     Options
	binary   string
	listen   string
	simSrv   *http.Server
	tasksLog *os.File

	mu     sync.Mutex
	listed map[int]bool // fleet host index -> listed in /master/slaves
	op     *operatorProc
	rec    record

	closeOnce sync.Once
	closeErr  error
	stopSig   func()
}

// Start builds a sandbox. On error nothing it made is left behind.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := checkTools(); err != nil {
		return nil, err
	}
	if err := CleanupIn(ctx, opts.BaseDir); err != nil {
		opts.Logf("sandbox: cleaning up leftovers: %v", err)
	}
	s := &Sandbox{opts: opts, listed: map[int]bool{}}
	if err := s.start(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	if opts.HandleSignals {
		s.handleSignals()
	}
	return s, nil
}

func (s *Sandbox) start(ctx context.Context) error {
	o := &s.opts
	var err error
	if s.Dir, err = newDir(o.BaseDir, o.Name); err != nil {
		return err
	}
	s.rec = record{Name: o.Name, OwnerPID: os.Getpid(), OwnerStart: procStart(os.Getpid())}
	if err := s.saveRecord(); err != nil {
		return err
	}
	began := time.Now()
	s.Fleet, err = testfleet.Start(ctx, testfleet.Options{N: o.Agents, Prefix: o.Prefix, Logf: o.Logf})
	if err != nil {
		return fmt.Errorf("sandbox: start %d agents: %w", o.Agents, err)
	}
	s.mu.Lock()
	s.rec.FleetRunID = s.Fleet.RunID
	for _, h := range s.Fleet.Hosts() {
		s.listed[h.Index] = true
	}
	s.mu.Unlock()
	if err := s.saveRecord(); err != nil {
		return err
	}
	if err := s.startEmulator(); err != nil {
		return err
	}
	s.RegistryAddress = net.JoinHostPort(s.Fleet.Host(0).Address, strconv.Itoa(RegistryPort))
	if err := s.writeInitialConfig(); err != nil {
		return err
	}
	if s.listen, err = chooseListen(o.OperatorListen); err != nil {
		return err
	}
	if s.binary = o.OperatorBinary; s.binary == "" {
		if s.binary, err = s.buildOperator(ctx); err != nil {
			return err
		}
	}
	o.Logf("sandbox: %d agents, Marathon emulator at %s, registry address %s (%s)", o.Agents, s.MarathonURL,
		s.RegistryAddress, time.Since(began).Round(time.Millisecond))
	if o.NoOperator {
		return nil
	}
	return s.StartOperator(ctx)
}

// startEmulator serves the emulator with the process executor on a free
// loopback port and lists every agent.
func (s *Sandbox) startEmulator() error {
	var err error
	s.tasksLog, err = os.OpenFile(filepath.Join(s.Dir, "tasks.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	exec := marathonsim.NewProcExec(marathonsim.ProcOptions{
		CheckInterval:           s.opts.CheckInterval,
		Log:                     s.tasksLog,
		ContainerPortAsHostPort: true,
	})
	s.Sim = marathonsim.New(marathonsim.Options{Executor: exec, Agents: s.mesosAgents(), Leader: "127.0.0.1"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("sandbox: listen for the Marathon emulator: %w", err)
	}
	s.MarathonURL = "http://" + ln.Addr().String()
	s.simSrv = &http.Server{Handler: s.Sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.simSrv.Serve(ln) }()
	return nil
}

// mesosAgents is the emulator's agent list: every listed fleet host, with
// its IP as the Mesos hostname (as on DC/OS) and an Enter prefix that runs
// tasks inside the host's namespaces.
func (s *Sandbox) mesosAgents() []marathonsim.Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []marathonsim.Agent
	for _, h := range s.Fleet.Hosts() {
		if !s.listed[h.Index] {
			continue
		}
		out = append(out, marathonsim.Agent{
			Hostname:   h.Address,
			IP:         h.Address,
			Attributes: map[string]string{"name": h.Name},
			Enter: []string{"nsenter", "--target", strconv.Itoa(h.HolderPID()),
				"--net", "--mount", "--uts", "--pid", "--wd=/", "--"},
		})
	}
	return out
}

// publishAgents tells the emulator which agents are listed now.
func (s *Sandbox) publishAgents() { s.Sim.SetAgents(s.mesosAgents()) }

// handleSignals closes the sandbox on SIGINT/SIGTERM and exits.
func (s *Sandbox) handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			s.opts.Logf("sandbox: %v: tearing down", sig)
			_ = s.Close()
			os.Exit(1)
		case <-done:
		}
	}()
	s.stopSig = func() { signal.Stop(ch); close(done) }
}

// Close stops the operator, the emulator and its tasks, and removes the
// fleet and the sandbox directory. It is idempotent.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		if s.stopSig != nil {
			s.stopSig()
		}
		var errs []error
		if err := s.KillOperator(); err != nil && !errors.Is(err, ErrOperatorNotRunning) {
			errs = append(errs, err)
		}
		if s.Sim != nil {
			s.Sim.Close()
		}
		if s.simSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.simSrv.Shutdown(ctx)
			cancel()
		}
		if s.tasksLog != nil {
			s.tasksLog.Close()
		}
		if s.Fleet != nil {
			errs = append(errs, s.Fleet.Close())
		}
		if s.Dir != "" {
			errs = append(errs, os.RemoveAll(s.Dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// chooseListen returns addr, or 127.0.0.1 with a free port when addr is "".
func chooseListen(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sandbox: find a free port for the operator: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
