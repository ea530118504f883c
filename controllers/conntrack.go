package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// The sysctl the DC/OS layer-4 load balancer needs for long connections.
const (
	BeLiberalKey  = "net.netfilter.nf_conntrack_tcp_be_liberal"
	BeLiberalPath = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal"
)

// Conntrack keeps nf_conntrack_tcp_be_liberal at the spec's value, live and
// across reboots: the sysctl.d file sets it at boot, and the modules-load.d
// file loads nf_conntrack early enough for the key to exist then
// (systemd-sysctl skips keys whose module is not loaded yet).
type Conntrack struct {
	nodeBase
	mu   sync.Mutex
	last *conntrackWant // the files for the spec's value, made once per change
}

// conntrackWant is what every node should hold for one value.
type conntrackWant struct {
	value            int
	persistFile      string
	want, key        string // the value as written, and the concern's want
	persist, modules []byte
}

// wanted returns the files for the spec's value and persist file.
func (r *Conntrack) wanted(ct *v1alpha1.ConntrackSpec) *conntrackWant {
	v := ct.TCPBeLiberalValue()
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.last; w != nil && w.value == v && w.persistFile == ct.PersistFile {
		return w
	}
	want := strconv.Itoa(v)
	r.last = &conntrackWant{value: v, persistFile: ct.PersistFile, want: want, key: BeLiberalKey + "=" + want,
		persist: []byte(fmt.Sprintf("# Written by registry-operator: the DC/OS layer-4 load balancer needs liberal TCP window tracking.\n%s = %s\n",
			BeLiberalKey, want)),
		modules: []byte(fmt.Sprintf("# Written by registry-operator: load nf_conntrack at boot so %s applies.\nnf_conntrack\n", ct.PersistFile))}
	return r.last
}

// NewConntrack returns the conntrack reconciler.
func NewConntrack(d Deps, o NodeOptions) *Conntrack {
	return &Conntrack{nodeBase: newNodeBase(d, reconciler.Conntrack, o)}
}

// Reconcile implements manager.Reconciler for one node key.
func (r *Conntrack) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := r.Spec()
	if !spec.ConntrackEnabled() {
		return manager.Result{}, nil
	}
	return r.nodePass(ctx, reconciler.Conntrack, key, spec, r.check)
}

func (r *Conntrack) check(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error {
	ct := spec.Conntrack
	w := r.wanted(ct)
	want := w.want
	o.want = w.key
	if err := syncFile(ctx, c, ct.PersistFile, w.persist, 0o644, o); err != nil {
		return err
	}
	if err := syncFile(ctx, c, ct.ModulesLoadFile, w.modules, 0o644, o); err != nil {
		return err
	}
	live, _, err := c.ReadFile(ctx, BeLiberalPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing uses conntrack on this node yet; the persisted value
		// applies once the module loads, and the next pass sets it live.
		o.detail = BeLiberalKey + " does not exist on this node (nf_conntrack is not loaded); the value is persisted for when it loads"
		o.carried = o.want
		return nil
	}
	if err != nil {
		return err
	}
	have := strings.TrimSpace(string(live))
	if have != want {
		o.changes = append(o.changes, fmt.Sprintf("sysctl %s %s -> %s", BeLiberalKey, have, want))
		switch err := c.WriteInPlace(ctx, BeLiberalPath, []byte(want+"\n")); {
		case errors.Is(err, nodes.ErrNotApplied):
			return nil // report mode: recorded, nothing to read back
		case err != nil:
			return fmt.Errorf("set %s: %w", BeLiberalKey, err)
		}
		after, _, err := c.ReadFile(ctx, BeLiberalPath)
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(after)); got != want {
			return fmt.Errorf("set %s to %s, but the kernel reports %s", BeLiberalKey, want, got)
		}
	}
	if !o.isPending() {
		o.carried = o.want
	}
	return nil
}
