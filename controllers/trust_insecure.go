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
	"github.com/registry-operator/registry-operator/internal/procstat"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Where dockerd reads its configuration, and where the operator records
// that a change to it still waits for a dockerd restart: the identity of
// the dockerd that was running when daemon.json changed. Any other dockerd
// (restarted by anyone, or after a reboot) has read the new file.
const (
	DockerDaemonJSON    = "/etc/docker/daemon.json"
	dockerRestartMarker = "/etc/docker/.registry-operator-restart"
	// insecureOwnedFile lists the insecure-registries entries the operator
	// added, so that it removes only those when they are no longer wanted.
	insecureOwnedFile = "/etc/docker/.registry-operator-insecure-registries"
	// mirrorsKey and mirrorsOwnedFile: the same for the pull-through
	// mirror's entry in registry-mirrors (spec.mirror.dockerRegistryMirrors).
	mirrorsKey           = "registry-mirrors"
	mirrorsOwnedFile     = "/etc/docker/.registry-operator-registry-mirrors"
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
	t.restarts.about(strings.Join(names, ","))
	owed, err := editInsecureRegistries(ctx, c, names, o)
	if err != nil {
		return false, err
	}
	return t.applyDockerRestart(ctx, c, spec, owed, o)
}

// leaveInsecureDocker undoes syncInsecureDocker once tls.mode is no longer
// insecure: the names the operator added to insecure-registries leave it
// (nothing else in daemon.json changes), with the same restart rules. It
// reports whether the node is waiting for other agents to restart first.
//
// The mirror's registry-mirrors entry is kept in the same pass, so one
// dockerd restart applies both.
func (t *Trust) leaveInsecureDocker(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) (bool, error) {
	var mirrors []string
	if u := spec.DockerMirrorURL(); u != "" && slices.Contains(spec.Trust.Runtimes, v1alpha1.RuntimeDocker) {
		mirrors = []string{u}
	}
	t.restarts.about(strings.Join(mirrors, ","))
	owed, err := editInsecureRegistries(ctx, c, nil, o)
	if err != nil {
		return false, err
	}
	owedMirror, err := editDaemonList(ctx, c, mirrorsList, mirrors, o)
	if err != nil {
		return false, err
	}
	return t.applyDockerRestart(ctx, c, spec, owed || owedMirror, o)
}

// editInsecureRegistries makes insecure-registries in daemon.json hold
// want, and of the names the operator added earlier (insecureOwnedFile)
// only those still wanted; entries anyone else added stay. It reports
// whether a dockerd restart is owed for the file, now or from before.
func editInsecureRegistries(ctx context.Context, c nodes.Conn, want []string, o *outcome) (bool, error) {
	return editDaemonList(ctx, c, insecureList, want, o)
}

// daemonList is one list in daemon.json the operator keeps entries in,
// with the file that records which entries it added.
type daemonList struct {
	key, ownedFile string
	// why an entry the operator added leaves the list.
	why string
}

var (
	insecureList = daemonList{key: insecureKey, ownedFile: insecureOwnedFile,
		why: "tls.mode is no longer insecure, or registry.address changed"}
	mirrorsList = daemonList{key: mirrorsKey, ownedFile: mirrorsOwnedFile,
		why: "spec.mirror is off, or its address changed"}
)

// editDaemonList makes the list l in daemon.json hold want, and of the
// entries the operator added earlier (l.ownedFile) only those still
// wanted; entries anyone else added stay. It reports whether a dockerd
// restart is owed for the file, now or from before.
func editDaemonList(ctx context.Context, c nodes.Conn, l daemonList, want []string, o *outcome) (bool, error) {
	owned, err := readOwned(ctx, c, l.ownedFile)
	if err != nil {
		return false, err
	}
	if len(want) == 0 && len(owned) == 0 {
		return restartOwed(ctx, c) // never added anything here: daemon.json is not even read
	}
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
		return false, fmt.Errorf("%s does not parse (%v); it is left untouched: fix it by hand so the operator can manage %s in it",
			DockerDaemonJSON, err, l.key)
	}
	var stale []string
	for _, n := range owned {
		if !slices.Contains(want, n) {
			stale = append(stale, n)
		}
	}
	removed, err := d.removeFrom(l.key, stale)
	if err != nil {
		return false, fmt.Errorf("%s: %w; it is left untouched: fix it by hand", DockerDaemonJSON, err)
	}
	added, err := d.addTo(l.key, want)
	if err != nil {
		return false, fmt.Errorf("%s: %w; it is left untouched: fix it by hand", DockerDaemonJSON, err)
	}
	// What the operator owns afterwards: what it owned and still wants,
	// plus what it adds now. Recorded before an addition reaches the file
	// and after a removal did, so an interrupted pass never leaves an entry
	// the operator added without a record of it.
	keep := slices.DeleteFunc(slices.Clone(owned), func(n string) bool { return slices.Contains(stale, n) })
	ownedAfter := append(keep, added...)
	if len(added) > 0 {
		if err := writeOwned(ctx, c, l.ownedFile, ownedAfter); err != nil {
			return false, err
		}
	}
	if len(added)+len(removed) == 0 {
		if len(stale) > 0 { // owned names someone removed by hand: forget them
			if err := writeOwned(ctx, c, l.ownedFile, ownedAfter); err != nil {
				return false, err
			}
		}
		return restartOwed(ctx, c)
	}
	if len(added) > 0 {
		o.changes = append(o.changes, fmt.Sprintf("add %s to %s in %s", strings.Join(added, ", "), l.key, DockerDaemonJSON))
	}
	if len(removed) > 0 {
		o.changes = append(o.changes, fmt.Sprintf("remove %s from %s in %s (%s)",
			strings.Join(removed, ", "), l.key, DockerDaemonJSON, l.why))
	}
	id, err := dockerdIdentity(ctx, c)
	if err != nil {
		return false, err
	}
	if err := c.WriteFile(ctx, DockerDaemonJSON, d.bytes(), mode); err != nil {
		return false, err
	}
	if len(stale) > 0 {
		if err := writeOwned(ctx, c, l.ownedFile, ownedAfter); err != nil {
			return false, err
		}
	}
	if id == "" {
		return false, nil // dockerd reads the file when it starts
	}
	if err := c.WriteFile(ctx, dockerRestartMarker, []byte(id+"\n"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// readOwned returns the entries the operator added, one per line in file.
func readOwned(ctx context.Context, c nodes.Conn, file string) ([]string, error) {
	b, _, err := c.ReadFile(ctx, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// writeOwned records names as the entries the operator added; no names
// removes the record.
func writeOwned(ctx context.Context, c nodes.Conn, file string, names []string) error {
	if len(names) == 0 {
		if err := c.Remove(ctx, file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return c.WriteFile(ctx, file, []byte(strings.Join(names, "\n")+"\n"), 0o644)
}

// applyDockerRestart restarts dockerd when a change to daemon.json waits
// for it (owed), within the rules: only with trust.allowDockerRestart, one
// agent at a time, the registry's agents last. It reports whether the node
// is waiting for other agents to restart first.
func (t *Trust) applyDockerRestart(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, owed bool, o *outcome) (bool, error) {
	node := c.Node()
	t.restarts.set(node, owed)
	if !owed {
		return false, nil
	}
	if !spec.Trust.AllowDockerRestart {
		o.pending = true
		o.detail = joinDetail(o.detail, "dockerd must be restarted to apply "+DockerDaemonJSON+
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
		return false, fmt.Errorf("restart dockerd to apply %s: %w", DockerDaemonJSON, err)
	}
	o.changes = append(o.changes, "restart dockerd to apply "+DockerDaemonJSON)
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
	st, err := procstat.Parse(stat)
	if err != nil {
		return "", fmt.Errorf("dockerd's /proc/%s/stat: %w", pid, err)
	}
	boot, _, err := c.ReadFile(ctx, bootIDFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return fmt.Sprintf("boot %s pid %s start %d", strings.TrimSpace(string(boot)), pid, st.StartTime), nil
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
