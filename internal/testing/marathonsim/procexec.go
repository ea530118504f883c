package marathonsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcImage maps docker images to a real program run on the agent.
type ProcImage struct {
	// Patterns are path.Match patterns on the image ("registry:*").
	Patterns []string
	// Command returns the argv (without the agent's Enter prefix) and the
	// stdin for a task. env is the app's env with container paths already
	// translated to host paths; listen has one "ip:port" per task port.
	Command func(spec LaunchSpec, env map[string]string, listen []string) (argv []string, stdin []byte, err error)
}

// ProcOptions configure a ProcExec.
type ProcOptions struct {
	// Images default to RegistryImage("/usr/bin/docker-registry").
	Images []ProcImage
	// AllowCmd runs apps without a mapped image through /bin/sh -c cmd.
	AllowCmd bool
	// Dial reaches task endpoints for health checks (default net.Dialer).
	Dial DialFunc
	// CheckInterval, when set, replaces every health check's intervalSeconds.
	CheckInterval time.Duration
	// Log receives the processes' stdout and stderr (default: discarded).
	Log io.Writer
	// ContainerPortAsHostPort makes bridge mappings with hostPort 0 listen
	// on (and report) the containerPort instead of an assigned host port,
	// e.g. to serve a registry at agentIP:5000. Two tasks of the app then
	// cannot share an agent, so a 1/1 upgradeStrategy restart on a single
	// eligible agent fails its new task until the old one is gone.
	ContainerPortAsHostPort bool
}

// ProcExec starts a real process per task, inside the chosen agent's
// namespaces (Agent.Enter), and runs the app's TCP/HTTP health checks
// against it. Volumes are honoured by rewriting env values that point into
// a volume's containerPath to its hostPath.
type ProcExec struct {
	opts  ProcOptions
	mu    sync.Mutex
	tasks map[*procTask]struct{}
}

// NewProcExec returns a process executor.
func NewProcExec(opts ProcOptions) *ProcExec {
	if opts.Images == nil {
		opts.Images = []ProcImage{RegistryImage("/usr/bin/docker-registry")}
	}
	if opts.Dial == nil {
		opts.Dial = (&net.Dialer{}).DialContext
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	return &ProcExec{opts: opts, tasks: map[*procTask]struct{}{}}
}

// RegistryImage runs the Docker registry (distribution) for "registry"
// images. With args "serve <file>" it runs from that file, read from the
// agent through the app's volumes (procexec_config.go); without args, from
// a minimal config on stdin with storage in the volume mounted at
// /var/lib/registry (or REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY). Either
// way the app's REGISTRY_* env is applied by the registry itself.
func RegistryImage(binary string) ProcImage {
	return ProcImage{
		Patterns: []string{"registry", "registry:*", "library/registry:*", "docker.io/library/registry:*"},
		Command: func(spec LaunchSpec, env map[string]string, listen []string) ([]string, []byte, error) {
			if len(listen) == 0 {
				return nil, nil, errors.New("registry app has no port")
			}
			// The image's entrypoint with the app's args: the registry
			// reads the config file they name.
			if file, ok := registryConfigArg(spec.App); ok {
				env["REGISTRY_HTTP_ADDR"] = listen[0]
				cfg, err := registryConfigFromFile(spec, file, listen[0])
				if err != nil {
					return nil, nil, err
				}
				return []string{binary, "serve", "/dev/stdin"}, cfg, nil
			}
			root := env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"]
			if root == "" {
				root = translatePath("/var/lib/registry", spec.App)
			}
			if root == "/var/lib/registry" {
				return nil, nil, fmt.Errorf("app %s: no hostPath volume at /var/lib/registry and no REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", spec.AppID)
			}
			// The listen address is the agent's, whatever the app's env says.
			env["REGISTRY_HTTP_ADDR"] = listen[0]
			cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %q\n  delete:\n    enabled: true\nhttp:\n  addr: %q\n", root, listen[0])
			return []string{binary, "serve", "/dev/stdin"}, []byte(cfg), nil
		},
	}
}

// translatePath maps a path inside the container to the host path of the
// volume that holds it (longest containerPath wins).
func translatePath(p string, app AppSpec) string {
	if app.Container == nil {
		return p
	}
	vols := append([]VolumeSpec(nil), app.Container.Volumes...)
	sort.Slice(vols, func(i, j int) bool { return len(vols[i].ContainerPath) > len(vols[j].ContainerPath) })
	for _, v := range vols {
		cp := strings.TrimSuffix(v.ContainerPath, "/")
		if v.HostPath == "" || cp == "" {
			continue
		}
		if p == cp || strings.HasPrefix(p, cp+"/") {
			return v.HostPath + strings.TrimPrefix(p, cp)
		}
	}
	return p
}

// taskPorts are the ports the process listens on, one per task port. No
// NAT happens here, so for a bridge mapping the process listens on the host
// port Marathon reports for the task: the given hostPort, or the one the
// emulator assigned for hostPort 0 (as Mesos would), or with
// ContainerPortAsHostPort the containerPort itself.
func (p *ProcExec) taskPorts(spec LaunchSpec) []int {
	if spec.App.NetworkMode() == "host" || spec.App.Container == nil {
		return spec.HostPorts
	}
	var out []int
	k := 0
	for _, pm := range spec.App.Container.PortMappings {
		if pm.HostPort == nil {
			out = append(out, pm.ContainerPort)
			continue
		}
		switch {
		case *pm.HostPort != 0:
			out = append(out, *pm.HostPort)
		case p.opts.ContainerPortAsHostPort && pm.ContainerPort != 0:
			out = append(out, pm.ContainerPort)
		case k < len(spec.HostPorts):
			out = append(out, spec.HostPorts[k])
		}
		k++
	}
	return out
}

func (p *ProcExec) command(spec LaunchSpec, env map[string]string, listen []string) ([]string, []byte, error) {
	img := spec.App.Image()
	for _, m := range p.opts.Images {
		for _, pat := range m.Patterns {
			if ok, _ := path.Match(pat, img); ok {
				return m.Command(spec, env, listen)
			}
		}
	}
	if p.opts.AllowCmd && spec.App.Cmd != "" {
		return []string{"/bin/sh", "-c", spec.App.Cmd}, nil, nil
	}
	return nil, nil, fmt.Errorf("no process mapping for image %q of app %s", img, spec.AppID)
}

// Launch implements Executor.
func (p *ProcExec) Launch(spec LaunchSpec) (TaskHandle, error) {
	ports := p.taskPorts(spec)
	env := map[string]string{}
	for k, v := range spec.App.StringEnv() {
		env[k] = translatePath(v, spec.App)
	}
	var listen []string
	for i, port := range ports {
		listen = append(listen, net.JoinHostPort(spec.Agent.IP, strconv.Itoa(port)))
		env["PORT"+strconv.Itoa(i)] = strconv.Itoa(port)
	}
	if len(ports) > 0 {
		env["PORT"] = strconv.Itoa(ports[0])
	}
	env["HOST"] = spec.Agent.IP
	env["MARATHON_APP_ID"] = spec.AppID
	env["MESOS_TASK_ID"] = spec.TaskID
	argv, stdin, err := p.command(spec, env, listen)
	if err != nil {
		return nil, err
	}
	argv = append(append([]string(nil), spec.Agent.Enter...), argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = p.opts.Log
	cmd.Stderr = p.opts.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", argv[0], spec.Agent.Hostname, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := len(spec.App.HealthChecks)
	t := &procTask{exec: p, cmd: cmd, ports: ports, cancel: cancel, exited: make(chan struct{}),
		health: make([]HealthResult, n), checked: make([]bool, n)}
	p.mu.Lock()
	p.tasks[t] = struct{}{}
	p.mu.Unlock()
	go t.wait()
	for i, hc := range spec.App.HealthChecks {
		go t.checkLoop(ctx, i, hc, spec.Agent.IP)
	}
	return t, nil
}

// Close kills every process this executor started.
func (p *ProcExec) Close() {
	p.mu.Lock()
	ts := make([]*procTask, 0, len(p.tasks))
	for t := range p.tasks {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	for _, t := range ts {
		t.Kill()
		<-t.exited
	}
}

type procTask struct {
	exec   *ProcExec
	cmd    *exec.Cmd
	ports  []int
	cancel context.CancelFunc
	exited chan struct{}

	mu      sync.Mutex
	killed  bool
	waitErr error
	health  []HealthResult
	checked []bool
}

func (t *procTask) wait() {
	err := t.cmd.Wait()
	t.mu.Lock()
	t.waitErr = err
	t.mu.Unlock()
	t.cancel()
	close(t.exited)
	t.exec.mu.Lock()
	delete(t.exec.tasks, t)
	t.exec.mu.Unlock()
}

func (t *procTask) checkLoop(ctx context.Context, i int, hc HealthCheckSpec, ip string) {
	interval := time.Duration(hc.IntervalSeconds) * time.Second
	if t.exec.opts.CheckInterval > 0 {
		interval = t.exec.opts.CheckInterval
	}
	if interval <= 0 {
		interval = time.Second
	}
	for {
		var err error
		port, perr := checkPort(hc, t.ports)
		if perr != nil {
			err = perr
		} else if hc.Protocol == "COMMAND" {
			err = errors.New("COMMAND checks are not run by the emulator")
		} else {
			err = runCheck(ctx, t.exec.opts.Dial, hc, ip, port)
		}
		if ctx.Err() != nil {
			return
		}
		t.mu.Lock()
		cause := ""
		if err != nil {
			cause = err.Error()
		}
		recordCheck(&t.health[i], err == nil, time.Now(), cause)
		t.checked[i] = true
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func (t *procTask) Kill() {
	t.mu.Lock()
	if t.killed {
		t.mu.Unlock()
		return
	}
	t.killed = true
	t.mu.Unlock()
	pgid := -t.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	go func() {
		select {
		case <-t.exited:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
		}
	}()
}

func (t *procTask) Status(time.Time) TaskStatus {
	select {
	case <-t.exited:
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.killed {
			return TaskStatus{State: "TASK_KILLED", Ports: t.ports}
		}
		if t.waitErr == nil {
			return TaskStatus{State: "TASK_FINISHED", Message: "Command exited with status 0", Ports: t.ports}
		}
		return TaskStatus{State: "TASK_FAILED", Message: "Command exited: " + t.waitErr.Error(), Ports: t.ports}
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TaskStatus{State: "TASK_RUNNING", Ports: t.ports}
	for _, c := range t.checked {
		if !c {
			return st
		}
	}
	if len(t.health) > 0 {
		st.Health = append([]HealthResult(nil), t.health...)
	}
	return st
}
