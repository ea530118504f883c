// Command sandbox runs the demo: a 3-agent sandbox (internal/testing/sandbox) with
// the operator, shown converging, with an image pushed and pulled through
// the registry it manages. hack/demo.sh (make demo) builds and runs it.
//
//	sandbox demo [-agents 3] [-listen 127.0.0.1:9090] [-auth]   until Ctrl-C
//	sandbox down                                         stop a demo, remove leftovers
//	sandbox exec AGENT -- COMMAND [ARGS...]              run a command inside an agent of the demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

const usage = `usage: sandbox <command>

  demo [-agents N] [-listen ADDR] [-operator BIN] [-auth]
        start N agents (default 3), the Marathon emulator and the operator
        with config/sandbox.yaml; show it converge; push and pull an image;
        keep running until Ctrl-C, then remove everything. With -auth (or
        auth in config/sandbox.yaml) the registry refuses anonymous clients:
        the push goes through the ci user, the pull through the credentials
        the operator put on the agents
  down  stop a running demo and remove what any dead sandbox left behind
  exec AGENT -- COMMAND [ARGS...]
        run a command inside agent AGENT (0, 1, ...) of the running demo

Needs root. Run from the repository (it reads config/sandbox.yaml).
`

const demoName = "demo"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(os.Args[2:])
	case "down":
		err = down()
	case "exec":
		err = execIn(os.Args[2:])
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
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

func demo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	agents := fs.Int("agents", 3, "number of agents (at least 3: agent 0 runs the registry, 1 pushes, 2 pulls)")
	listen := fs.String("listen", "127.0.0.1:9090", "where the operator serves its status page and /metrics (another free port if busy)")
	binary := fs.String("operator", "bin/registry-operator", "the registry-operator binary (make build)")
	auth := fs.Bool("auth", false, "turn on htpasswd auth and pull credentials (as config/sandbox.yaml's commented auth block)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *agents < 3 {
		return fmt.Errorf("-agents %d: the demo needs at least 3", *agents)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, sshd): run `sudo make demo`")
	}
	bin, err := filepath.Abs(*binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("operator binary: %w (run `make build` first)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A closed terminal or pipe must not kill the demo before it tears down.
	signal.Ignore(syscall.SIGPIPE)
	if err := stopDemos(); err != nil {
		return err
	}
	addr := *listen
	if !free(addr) {
		addr = ""
	}

	say("registry-operator demo: %d agents, the Marathon emulator and the operator, all on this machine", *agents)
	step(1, "starting %d agents (real OpenSSH sshd, each in its own network namespace) and the Marathon emulator", *agents)
	began := time.Now()
	sb, err := sandbox.Start(ctx, sandbox.Options{Agents: *agents, Name: demoName, OperatorBinary: bin, OperatorListen: addr, Auth: *auth})
	if err != nil {
		return err
	}
	defer teardown(sb)
	for _, h := range sb.Agents() {
		role := "agent"
		if h.Index == 0 {
			role = "agent, runs the registry"
		}
		detail("%-8s %-12s (%s)", h.Name, h.Address, role)
	}
	detail("Marathon + Mesos emulator: %s", sb.MarathonURL)
	step(2, "the operator is running with config/sandbox.yaml")
	detail("status page:  %s/", sb.OperatorURL())
	detail("metrics:      %s/metrics", sb.OperatorURL())
	detail("JSON status:  %s/api/status", sb.OperatorURL())
	detail("operator log: %s", sb.LogPath())
	detail("config:       %s (edit it: the operator reloads it)", sb.ConfigPath())

	step(3, "waiting for the operator to converge (certificates, trust, conntrack, placement, registry app)")
	if err := sb.Wait(ctx, 3*time.Minute, "the cluster in sync", sb.Converged); err != nil {
		return err
	}
	st, err := sb.Status(ctx)
	if err != nil {
		return err
	}
	detail("in sync %s after start:", time.Since(began).Round(100*time.Millisecond))
	if len(st.Certificates.CAs) > 0 {
		detail("  CA %q issued; server certificate serial %s for %s", st.Certificates.CAs[0].Subject, st.Certificates.Server.Serial, sb.RegistryAddress)
	}
	detail("  every agent trusts the CA: %s", sb.CAPath())
	detail("  every agent has %s = 1", sandbox.ConntrackKey)
	detail("  tls.crt and tls.key placed in %s on %s", sb.CertsDir(), sb.RegistryAgent().Name)
	if pp := st.PullPassword; pp != nil {
		detail("  htpasswd (bcrypt) with the ci user and %s next to them; config.yml turns on htpasswd auth", pp.User)
		detail("  pull credentials for %s on every agent: %s, %s, %s", pp.User, sandbox.DockerTarGz, sandbox.DockerConfig, sandbox.MesosDockerConfig)
	}
	detail("  Marathon app %s is healthy: docker-registry serving TLS on %s (probe ok)", sandbox.AppID, sb.RegistryAddress)

	reg, err := sb.Spec()
	if err != nil {
		return err
	}
	if reg.Spec.CredentialsEnabled() {
		if err := pushPullWithAuth(ctx, sb, &reg.Spec); err != nil {
			return err
		}
	} else if err := pushPull(ctx, sb); err != nil {
		return err
	}

	say("")
	say("The sandbox keeps running; the operator repairs whatever you break. Try:")
	say("  bin/sandbox exec 1 -- rm %s      # watch it come back within 5s", sb.CAPath())
	say("  bin/sandbox exec 2 -- sysctl -w %s=0", sandbox.ConntrackKey)
	say("  bin/registry-operator status --addr %s", sb.OperatorAddr())
	say("See docs/demo.md. Press Ctrl-C (or run `make demo-down`) to remove everything.")
	<-ctx.Done()
	say("")
	say("stopping: removing the operator, the registry, the agents and every file")
	return nil
}

// pushPull is step 4 without auth: anyone may push and pull.
func pushPull(ctx context.Context, sb *sandbox.Sandbox) error {
	step(4, "pushing an image from agent-1 and pulling it on agent-2 through %s (skopeo, TLS verified)", sb.RegistryAddress)
	pushed, err := sb.Push(ctx, 1, "demo/hello:1")
	if err != nil {
		return err
	}
	pulled, err := sb.Pull(ctx, 2, "demo/hello:1")
	if err != nil {
		return err
	}
	if pushed != pulled {
		return fmt.Errorf("pulled manifest %s, pushed %s", pulled, pushed)
	}
	detail("ok: %s/demo/hello:1 pushed and pulled, manifest %s", sb.RegistryAddress, pushed)
	return nil
}

// pushPullWithAuth is step 4 with spec.auth: anonymous clients are
// refused, the ci user pushes, and agent-2 pulls with nothing but the
// config.json the operator keeps there for the pull user.
func pushPullWithAuth(ctx context.Context, sb *sandbox.Sandbox, spec *v1alpha1.Spec) error {
	step(4, "pushing an image as the ci user from agent-1 and pulling it on agent-2 with the distributed pull credentials (skopeo, TLS verified)")
	if _, err := sb.PushAs(ctx, 1, "demo/hello:anonymous", sandbox.Creds{}); !sandbox.Unauthorized(err) {
		return fmt.Errorf("an anonymous push: want 401 unauthorized, got %v", err)
	}
	detail("ok: an anonymous push is refused (401 unauthorized)")
	pw, err := sb.CIPassword()
	if err != nil {
		return err
	}
	pushed, err := sb.PushAs(ctx, 1, "demo/hello:1", sandbox.Creds{User: sandbox.CIUser, Password: pw})
	if err != nil {
		return err
	}
	detail("ok: pushed %s/demo/hello:1 as %s (password in %s)", sb.RegistryAddress, sandbox.CIUser, sb.CIPasswordFile())
	_, cfg, _ := spec.PullCredentials.Paths()
	if cfg == "" {
		cfg = sandbox.DockerConfig
	}
	// The pull credentials may still be on their way to agent-2.
	var pulled string
	err = sb.Wait(ctx, time.Minute, "agent-2 pulls with "+cfg, func(ctx context.Context) (bool, string) {
		pulled, err = sb.PullAs(ctx, 2, "demo/hello:1", sandbox.Creds{AuthFile: cfg})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if err != nil {
		return err
	}
	if pushed != pulled {
		return fmt.Errorf("pulled manifest %s, pushed %s", pulled, pushed)
	}
	user, _, err := sb.PullCredentials(ctx, 2, cfg)
	if err != nil {
		return err
	}
	detail("ok: pulled on agent-2 as %s with only %s (the operator's pull credentials), manifest %s", user, cfg, pulled)
	return nil
}

func teardown(sb *sandbox.Sandbox) {
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	_ = sb.StopOperator(ctx)
	if err := sb.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox: tear-down:", err)
		return
	}
	say("removed")
}

// stopDemos stops a demo that is still running (its owner tears it down)
// and removes what dead sandboxes left.
func stopDemos() error {
	running, err := sandbox.List(sandbox.DefaultBaseDir)
	if err != nil {
		return err
	}
	for _, r := range running {
		if r.Name != demoName || r.OwnerPID == os.Getpid() {
			continue
		}
		say("stopping the running demo (pid %d)", r.OwnerPID)
		_ = syscall.Kill(r.OwnerPID, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for syscall.Kill(r.OwnerPID, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if syscall.Kill(r.OwnerPID, 0) == nil {
			_ = syscall.Kill(r.OwnerPID, syscall.SIGKILL)
			time.Sleep(200 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return sandbox.Cleanup(ctx)
}

func down() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: run `sudo make demo-down`")
	}
	if err := stopDemos(); err != nil {
		return err
	}
	say("demo-down: no demo running, nothing left behind")
	return nil
}

// execIn runs a command inside an agent of the running demo.
func execIn(args []string) error {
	if len(args) < 3 || args[1] != "--" {
		return errors.New("usage: sandbox exec AGENT -- COMMAND [ARGS...]")
	}
	idx, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("agent %q: want a number (0, 1, ...)", args[0])
	}
	running, err := sandbox.List(sandbox.DefaultBaseDir)
	if err != nil {
		return err
	}
	for _, r := range running {
		if r.Name != demoName {
			continue
		}
		st, err := testfleet.ReadState(filepath.Join(testfleet.DefaultBaseDir, sandbox.DefaultPrefix+"-"+r.FleetRunID, testfleet.StateFile))
		if err != nil {
			return err
		}
		for _, h := range st.Hosts {
			if h.Index != idx {
				continue
			}
			argv := append([]string{"--target", strconv.Itoa(h.HolderPID), "--net", "--mount", "--uts", "--pid", "--wd=/", "--"}, args[2:]...)
			cmd := exec.Command("nsenter", argv...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}
			return cmd.Run()
		}
		return fmt.Errorf("the demo has no agent %d", idx)
	}
	return errors.New("no demo is running (start one with `make demo`)")
}

func free(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func say(format string, a ...any) { fmt.Printf(format+"\n", a...) }

func step(n int, format string, a ...any) {
	fmt.Printf("\n[%d/4] %s\n", n, fmt.Sprintf(format, a...))
}

func detail(format string, a ...any) {
	fmt.Printf("      %s\n", strings.TrimRight(fmt.Sprintf(format, a...), " "))
}
