// Command testfleet starts, inspects and removes a fleet of real OpenSSH
// hosts in network namespaces for the demo, the benchmarks and humans.
// hack/fleet.sh wraps it; see `testfleet help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/procstat"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

const usage = `usage: testfleet <command> [flags]

  up      -n N [-name NAME]   start N hosts in the background; replaces a running fleet of that name
  run     -n N [-name NAME]   the same in the foreground, until SIGINT/SIGTERM
  down    [-name NAME]        stop the named fleet and remove everything it made
  status  [-name NAME]        show the named fleet (hosts, sshd reachability) and all runs
  env     [-name NAME]        print the named fleet's shell variables (eval "$(testfleet env)")
  exec    [-name NAME] INDEX -- COMMAND [ARGS...]   run a command inside host INDEX
  cleanup [-prefix P]         remove leftovers of runs whose owner died

A fleet named NAME (default "default") is described by <base>/NAME.env
(shell variables FLEET_*) and <base>/NAME.json (the run record).
Needs root.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "env":
		err = printEnv(os.Args[2:])
	case "exec":
		err = execIn(os.Args[2:])
	case "cleanup":
		err = cleanup(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "testfleet:", err)
		os.Exit(1)
	}
}

type common struct {
	name, base, prefix string
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$`)

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.name, "name", "default", "fleet name (for the .env/.json files)")
	fs.StringVar(&c.base, "base", testfleet.DefaultBaseDir, "base directory of fleet runs")
	fs.StringVar(&c.prefix, "prefix", testfleet.DefaultPrefix, "prefix of namespace and link names")
}

func (c *common) check() error {
	if !nameRE.MatchString(c.name) {
		return fmt.Errorf("bad fleet name %q: use letters, digits, - and _", c.name)
	}
	return nil
}

func (c *common) envPath() string  { return filepath.Join(c.base, c.name+".env") }
func (c *common) jsonPath() string { return filepath.Join(c.base, c.name+".json") }
func (c *common) logPath() string  { return filepath.Join(c.base, c.name+".log") }

func parse(name string, args []string, c *common, extra func(*flag.FlagSet)) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs, c.check()
}

// up starts `run` as a background process in its own session and returns
// once the fleet is ready (its .env file exists) or `run` failed.
func up(args []string) error {
	var c common
	var n int
	if _, err := parse("up", args, &c, func(fs *flag.FlagSet) { fs.IntVar(&n, "n", 3, "number of hosts") }); err != nil {
		return err
	}
	if err := stopNamed(&c); err != nil {
		return err
	}
	if err := os.MkdirAll(c.base, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(c.logPath())
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "run", "-n", strconv.Itoa(n), "-name", c.name, "-base", c.base, "-prefix", c.prefix)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		if _, err := os.Stat(c.envPath()); err == nil {
			fmt.Printf("fleet %q: %d hosts up (supervisor pid %d, log %s)\n", c.name, n, cmd.Process.Pid, c.logPath())
			fmt.Printf("  source %s   # FLEET_HOSTS, FLEET_SSH_KEY, FLEET_KNOWN_HOSTS, ...\n", c.envPath())
			return nil
		}
		select {
		case err := <-exited:
			msg, _ := os.ReadFile(c.logPath())
			return fmt.Errorf("fleet %q failed to start (%v):\n%s", c.name, err, msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run starts the fleet, writes the .env/.json files and holds the fleet
// until a signal; the hosts end when this process does.
func run(args []string) error {
	var c common
	var n int
	if _, err := parse("run", args, &c, func(fs *flag.FlagSet) { fs.IntVar(&n, "n", 3, "number of hosts") }); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := stopNamed(&c); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	f, err := testfleet.Start(ctx, testfleet.Options{N: n, Prefix: c.prefix, BaseDir: c.base, Logf: logf})
	if err != nil {
		return err
	}
	defer f.Close()
	st := f.State()
	if err := copyFile(f.StatePath(), c.jsonPath()); err != nil {
		return err
	}
	if err := writeEnv(c.envPath(), c.name, &st, f.SSHArgs()); err != nil {
		return err
	}
	fmt.Printf("fleet %q ready: %s, gateway %s, key %s, known_hosts %s\n", c.name, st.Subnet, st.Gateway, st.PrivateKeyPath, st.KnownHostsPath)
	<-ctx.Done()
	fmt.Println("signal received, removing the fleet")
	os.Remove(c.envPath())
	os.Remove(c.jsonPath())
	return f.Close()
}

// stopNamed stops a running fleet of this name (its supervisor tears it
// down) and removes leftovers of dead runs.
func stopNamed(c *common) error {
	if st, err := testfleet.ReadState(c.jsonPath()); err == nil && st.OwnerPID > 0 && st.OwnerPID != os.Getpid() {
		_ = syscall.Kill(st.OwnerPID, syscall.SIGTERM)
		deadline := time.Now().Add(2 * time.Minute)
		for alive(st.OwnerPID) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.Remove(c.envPath())
	os.Remove(c.jsonPath())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return testfleet.CleanupIn(ctx, c.base, c.prefix)
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && !st.Zombie()
}

func down(args []string) error {
	var c common
	if _, err := parse("down", args, &c, nil); err != nil {
		return err
	}
	if err := stopNamed(&c); err != nil {
		return err
	}
	os.Remove(c.logPath())
	fmt.Printf("fleet %q removed\n", c.name)
	return nil
}

func status(args []string) error {
	var c common
	if _, err := parse("status", args, &c, nil); err != nil {
		return err
	}
	if st, err := testfleet.ReadState(c.jsonPath()); err == nil {
		fmt.Printf("fleet %q: run %s-%s, owner pid %d (alive: %v), %s via %s\n", c.name, st.Prefix, st.RunID, st.OwnerPID, alive(st.OwnerPID), st.Subnet, st.Bridge)
		for _, h := range st.Hosts {
			state := "sshd listening"
			conn, err := net.DialTimeout("tcp", h.Address+":22", 3*time.Second)
			if err != nil {
				state = "sshd unreachable: " + err.Error()
			} else {
				conn.Close()
			}
			fmt.Printf("  %-3d %-10s %-15s netns %-16s %s\n", h.Index, h.Name, h.Address, h.Netns, state)
		}
	} else {
		fmt.Printf("fleet %q: not running\n", c.name)
	}
	ents, _ := os.ReadDir(c.base)
	fmt.Println("runs under", c.base+":")
	for _, e := range ents {
		if st, err := testfleet.ReadState(filepath.Join(c.base, e.Name(), testfleet.StateFile)); err == nil {
			fmt.Printf("  %s-%s  owner %d (alive: %v)  %d hosts  %s\n", st.Prefix, st.RunID, st.OwnerPID, alive(st.OwnerPID), len(st.Hosts), st.Subnet)
		}
	}
	return nil
}

func printEnv(args []string) error {
	var c common
	if _, err := parse("env", args, &c, nil); err != nil {
		return err
	}
	b, err := os.ReadFile(c.envPath())
	if err != nil {
		return fmt.Errorf("fleet %q is not running (no %s)", c.name, c.envPath())
	}
	_, err = os.Stdout.Write(b)
	return err
}

func execIn(args []string) error {
	var c common
	fs, err := parse("exec", args, &c, nil)
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 2 {
		return errors.New("usage: testfleet exec [-name NAME] INDEX -- COMMAND [ARGS...]")
	}
	idx, err := strconv.Atoi(rest[0])
	if err != nil {
		return fmt.Errorf("bad host index %q", rest[0])
	}
	rest = rest[1:]
	if rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return errors.New("exec: no command")
	}
	st, err := testfleet.ReadState(c.jsonPath())
	if err != nil {
		return fmt.Errorf("fleet %q is not running: %w", c.name, err)
	}
	for _, h := range st.Hosts {
		if h.Index == idx {
			argv := append([]string{"--target", strconv.Itoa(h.HolderPID), "--net", "--mount", "--uts", "--pid", "--wd", "--"}, rest...)
			cmd := exec.Command("nsenter", argv...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			return cmd.Run()
		}
	}
	return fmt.Errorf("fleet %q has no host %d", c.name, idx)
}

func cleanup(args []string) error {
	var c common
	if _, err := parse("cleanup", args, &c, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return testfleet.CleanupIn(ctx, c.base, c.prefix)
}

func writeEnv(path, name string, st *testfleet.State, sshArgs []string) error {
	var addrs, names []string
	for _, h := range st.Hosts {
		addrs = append(addrs, h.Address)
		names = append(names, h.Name)
	}
	vars := [][2]string{
		{"FLEET_NAME", name},
		{"FLEET_RUN_ID", st.RunID},
		{"FLEET_DIR", st.Dir},
		{"FLEET_STATE", filepath.Join(st.Dir, testfleet.StateFile)},
		{"FLEET_OWNER_PID", strconv.Itoa(st.OwnerPID)},
		{"FLEET_SUBNET", st.Subnet},
		{"FLEET_GATEWAY", st.Gateway},
		{"FLEET_HOSTS", strings.Join(addrs, " ")},
		{"FLEET_NAMES", strings.Join(names, " ")},
		{"FLEET_SSH_KEY", st.PrivateKeyPath},
		{"FLEET_KNOWN_HOSTS", st.KnownHostsPath},
		{"FLEET_SUDO_USER", st.SudoUser},
		{"FLEET_PLAIN_USER", st.PlainUser},
		{"FLEET_SSH_OPTS", strings.Join(sshArgs, " ")},
	}
	var b strings.Builder
	b.WriteString("# test fleet " + name + "; source this file\n")
	for _, v := range vars {
		// Values are paths, addresses and names made by testfleet: no single quotes.
		fmt.Fprintf(&b, "%s='%s'\n", v[0], v[1])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
