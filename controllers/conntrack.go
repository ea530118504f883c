package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

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
type Conntrack struct{ nodeBase }

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
	want := strconv.Itoa(ct.TCPBeLiberalValue())
	o.want = BeLiberalKey + "=" + want
	persist := fmt.Sprintf("# Written by registry-operator: the DC/OS layer-4 load balancer needs liberal TCP window tracking.\n%s = %s\n",
		BeLiberalKey, want)
	modules := fmt.Sprintf("# Written by registry-operator: load nf_conntrack at boot so %s applies.\nnf_conntrack\n", ct.PersistFile)
	if _, err := syncFile(ctx, c, ct.PersistFile, []byte(persist), 0o644, o); err != nil {
		return err
	}
	if _, err := syncFile(ctx, c, ct.ModulesLoadFile, []byte(modules), 0o644, o); err != nil {
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
