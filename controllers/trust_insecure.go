package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Where dockerd reads its configuration, and where the operator records
// that a change to it still waits for a dockerd restart: the identity of
// the dockerd that was running when daemon.json changed. Any other dockerd
// (restarted by anyone, or after a reboot) has read the new file.
const (
	DockerDaemonJSON     = "/etc/docker/daemon.json"
	dockerRestartMarker  = "/etc/docker/.registry-operator-restart"
	dockerPIDFile        = "/var/run/docker.pid"
	bootIDFile           = "/proc/sys/kernel/random/boot_id"
	restartWaitRequeue   = 30 * time.Second
	scriptRestartDockerd = pathPrefix + `if [ -d /run/systemd/system ]; then exec systemctl restart docker.service 2>&1
elif command -v service >/dev/null 2>&1; then exec service docker restart 2>&1
else echo "neither systemd nor service(8) found: restart dockerd by hand" >&2; exit 1; fi`
)

// insecurePass is the node pass for tls.mode insecure: there is no CA, so
// Docker is told to talk to the registry without TLS verification.
func (t *Trust) insecurePass(ctx context.Context, key string, spec *v1alpha1.Spec) (manager.Result, error) {
	names, err := v1alpha1.RegistryDirNames(spec.Registry.Address)
	if err != nil {
		return manager.Result{}, manager.TerminalError(fmt.Errorf("registry.address: %w", err))
	}
	want := state.Hash([]byte(insecureKey + ":" + strings.Join(names, ",")))
	waiting := false
	res, err := t.nodePass(ctx, reconciler.Trust, key, spec, func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error {
		o.want = want
		var other []string
		for _, r := range spec.Trust.Runtimes {
			if r != v1alpha1.RuntimeDocker {
				other = append(other, r)
			}
		}
		if spec.Trust.SystemStore {
			other = append(other, "systemStore")
		}
		if len(other) > 0 {
			o.detail = fmt.Sprintf("tls.mode insecure: only docker's insecure-registries is managed; %s need no CA and get no setting", strings.Join(other, ", "))
		}
		if slices.Contains(spec.Trust.Runtimes, v1alpha1.RuntimeDocker) {
			w, err := t.syncInsecureDocker(ctx, c, spec, names, o)
			if err != nil {
				return err
			}
			waiting = w
		}
		if !o.isPending() {
			o.carried = want
		}
		return nil
	})
	if err == nil && waiting {
		res.RequeueAfter = restartWaitRequeue
	}
	return res, err
}

// syncInsecureDocker merges the registry into daemon.json and sees to the
// dockerd restart that applies it. It reports whether the node is waiting
// for other agents to restart first.
func (t *Trust) syncInsecureDocker(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, names []string, o *outcome) (bool, error) {
	have, mode, err := c.ReadFile(ctx, DockerDaemonJSON)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if !exists {
		mode = 0o644
	}
	d, err := parseDaemonJSON(have)
	if err != nil {
		return false, fmt.Errorf("%s does not parse (%v); it is left untouched: fix it by hand so the registry can be added to %s", DockerDaemonJSON, err, insecureKey)
	}
	added, err := d.addInsecure(names)
	if err != nil {
		return false, fmt.Errorf("%s: %w; it is left untouched: fix it by hand", DockerDaemonJSON, err)
	}
	owed := false
	if len(added) > 0 {
		o.changes = append(o.changes, fmt.Sprintf("add %s to %s in %s", strings.Join(added, ", "), insecureKey, DockerDaemonJSON))
		owed = true
		id, err := dockerdIdentity(ctx, c)
		if err != nil {
			return false, err
		}
		if err := c.WriteFile(ctx, DockerDaemonJSON, d.bytes(), mode); err != nil {
			return false, err
		}
		if id == "" {
			owed = false // dockerd reads the file when it starts
		} else if err := c.WriteFile(ctx, dockerRestartMarker, []byte(id+"\n"), 0o644); err != nil {
			return false, err
		}
	} else if owed, err = restartOwed(ctx, c); err != nil {
		return false, err
	}
	node := c.Node()
	t.restarts.set(node, owed)
	if !owed {
		return false, nil
	}
	if !spec.Trust.AllowDockerRestart {
		o.pending = true
		o.detail = joinDetail(o.detail, "dockerd must be restarted to apply "+insecureKey+" in "+DockerDaemonJSON+
			" (trust.allowDockerRestart is false: restart it by hand, or allow the operator to, one agent at a time)")
		return false, nil
	}
	if t.isRegistryAgent(spec, node) && t.restarts.othersOwe(t.Store, node, t.isRegistryAgent, spec) {
		o.pending = true
		o.detail = joinDetail(o.detail, "dockerd restart waits: this agent runs the registry, so the other agents restart first")
		return true, nil
	}
	// In report mode the restart is recorded (nodes.ErrNotApplied): it
	// counts as done, so the registry's agents are not held back by it.
	if err := t.restarts.restart(ctx, c); err != nil && !errors.Is(err, nodes.ErrNotApplied) {
		o.pending = true
		return false, fmt.Errorf("restart dockerd to apply %s: %w", insecureKey, err)
	}
	o.changes = append(o.changes, "restart dockerd to apply "+insecureKey)
	if err := c.Remove(ctx, dockerRestartMarker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	t.restarts.set(node, false)
	return false, nil
}

// restartOwed reads the marker: a restart is owed while the dockerd that
// was running when daemon.json changed still runs. A marker whose dockerd
// is gone is removed.
func restartOwed(ctx context.Context, c nodes.Conn) (bool, error) {
	m, _, err := c.ReadFile(ctx, dockerRestartMarker)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	id, err := dockerdIdentity(ctx, c)
	if err != nil {
		return false, err
	}
	if id != "" && id == strings.TrimSpace(string(m)) {
		return true, nil
	}
	if err := c.Remove(ctx, dockerRestartMarker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return false, nil
}

// dockerdIdentity names the running dockerd by boot, pid and start time
// (pids repeat across boots), or "" when none runs. Reads only files.
func dockerdIdentity(ctx context.Context, c nodes.Conn) (string, error) {
	b, _, err := c.ReadFile(ctx, dockerPIDFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	pid := strings.TrimSpace(string(b))
	if pid == "" || strings.Trim(pid, "0123456789") != "" {
		return "", nil
	}
	stat, _, err := c.ReadFile(ctx, "/proc/"+pid+"/stat")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // a stale pid file: dockerd is not running
	}
	if err != nil {
		return "", err
	}
	// Field 22, counted after the parenthesised command name.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("unexpected /proc/%s/stat", pid)
	}
	boot, _, err := c.ReadFile(ctx, bootIDFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return fmt.Sprintf("boot %s pid %s start %s", strings.TrimSpace(string(boot)), pid, f[19]), nil
}

// isRegistryAgent: the registry runs there (Marathon's task hosts: the app
// reconciler's AppPlacement view) or, before any task is known, may run
// there (the spec's hostname constraints).
func (t *Trust) isRegistryAgent(spec *v1alpha1.Spec, node string) bool {
	if spec.App == nil {
		return false
	}
	n, _ := t.Store.Node(node)
	ip := hostOnly(node)
	if a := t.Store.AppPlacement(spec.App.ID); a.Observed && len(a.Hosts) > 0 {
		return slices.Contains(a.Hosts, ip) || (n.Hostname != "" && slices.Contains(a.Hosts, n.Hostname))
	}
	match, err := matchHostConstraints(spec.App.Constraints, n.Hostname, ip)
	return err == nil && match
}
