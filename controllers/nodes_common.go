package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// NodeExecutor runs one pass on one node (nodes.Executor in production).
type NodeExecutor interface {
	Do(ctx context.Context, cfg nodes.Config, node string, fn func(ctx context.Context, c nodes.Conn) error) error
}

// NodeOptions are what the per-node reconcilers (trust, conntrack,
// placement, credentials) need besides Deps.
type NodeOptions struct {
	// Exec runs a pass on a node (nodes.Executor in production).
	Exec NodeExecutor
	// ReadFile reads operator-side files placement needs (the users'
	// passwordFile, app.httpSecretFile); os.ReadFile by default.
	ReadFile func(string) ([]byte, error)
	// HtpasswdCost is the bcrypt cost of new htpasswd hashes
	// (htpasswd.DefaultCost by default).
	HtpasswdCost int
}

// nodeBase is what the per-node reconcilers share.
type nodeBase struct {
	Deps
	exec NodeExecutor
}

func newNodeBase(d Deps, name string, o NodeOptions) nodeBase {
	return nodeBase{Deps: d.named(name), exec: o.Exec}
}

// outcome is what one reconciler found (and did) on one node.
type outcome struct {
	changes []string // applied, or in report mode what would be
	pending bool     // something still differs from the spec
	detail  string
	carried string // Concern.Hash: what the node now carries
	want    string // what the spec wants, to tell drift from rollout
	// rec is the report-mode connection, nil when changes are applied:
	// whatever it recorded is a change still owed.
	rec *nodes.RecordingConn
}

// isPending reports whether the node still differs from the spec: a
// check said so, or a change was recorded instead of applied.
func (o *outcome) isPending() bool {
	return o.pending || (o.rec != nil && len(o.rec.Recorded()) > 0)
}

// check inspects one node and repairs it through c. In report mode c is a
// nodes.RecordingConn, so the repair is recorded, not applied.
type check func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error

// nodePass runs check on the node named by key and records the result: the
// node's contact and concern in the store, its out_of_sync series, drift
// corrections, and the nodes gauge. Unreachable nodes come back as errors,
// so the manager retries them with backoff; a refused host key is terminal.
func (d *nodeBase) nodePass(ctx context.Context, name, key string, spec *v1alpha1.Spec, fn check) (manager.Result, error) {
	_, prev, ok := d.Store.NodeConcern(key, name)
	if !ok {
		return manager.Result{}, nil // left the fleet since it was queued
	}
	var o outcome
	// The one place report mode is decided for the node reconcilers: a
	// pass in report mode works on a connection that changes nothing.
	report := spec.Report()
	err := d.exec.Do(ctx, nodes.ConfigFrom(spec.Nodes.SSH), key, func(ctx context.Context, c nodes.Conn) error {
		if report {
			o.rec = nodes.Recording(c)
			c = o.rec
		}
		return fn(ctx, c, spec, &o)
	})
	now := d.Clock.Now()
	defer d.updateNodesGauge(spec)
	if err != nil && nodes.IsUnreachable(err) {
		d.Store.SetContact(key, false, now, err.Error())
		// What the node carried at the last contact is still the best
		// knowledge; the error says why it is not fresher.
		c := prev
		c.Error, c.Checked = err.Error(), now
		d.Store.SetConcern(key, name, c)
		d.Metrics.SetOutOfSync(name, key, !c.InSync)
		if nodes.IsHostKeyError(err) {
			return manager.Result{}, manager.TerminalError(err)
		}
		return manager.Result{}, err
	}
	d.Store.SetContact(key, true, now, "")
	c := state.Concern{InSync: err == nil && !o.isPending(), Detail: o.detail, Changes: o.changes, Hash: o.carried, Checked: now}
	switch {
	case c.InSync:
		c.SyncedWant = o.want
	case o.want == "" || prev.SyncedWant == o.want:
		c.SyncedWant = prev.SyncedWant // drift found in report mode (or a failed repair) is still drift
	}
	wasSynced := (prev.InSync && prev.Hash == o.want) || (o.want != "" && prev.SyncedWant == o.want)
	if err != nil {
		c.Error = err.Error()
	}
	d.Store.SetConcern(key, name, c)
	d.Metrics.SetOutOfSync(name, key, !c.InSync)
	if err == nil && !report && len(o.changes) > 0 && wasSynced {
		d.Metrics.DriftCorrections.WithLabelValues(name).Inc()
		d.Log.Info("drift corrected", "reconciler", name, "node", key, "changes", o.changes)
	} else if len(o.changes) > 0 && !report {
		d.Log.Info("node updated", "reconciler", name, "node", key, "changes", o.changes)
	}
	if err != nil {
		return manager.Result{}, fmt.Errorf("%s on node %s: %w", name, key, err)
	}
	return manager.Result{}, nil
}

// updateNodesGauge recomputes registry_operator_nodes from the store after
// a pass, so a scrape only reads numbers.
func (d *nodeBase) updateNodesGauge(spec *v1alpha1.Spec) {
	updateNodesGauge(spec, d.Store, d.Metrics)
}

// nodeReconcilers lists the per-node reconcilers the spec turns on.
func nodeReconcilers(spec *v1alpha1.Spec) []string {
	var buf [4]string
	rs, _ := appendNodeReconcilers(buf[:0], spec)
	return slices.Clone(rs)
}

// appendNodeReconcilers appends the per-node reconcilers the spec turns on
// to rs, and returns a key naming that set: one character, a bit for
// each, so the nodes gauge names its classifier without allocating.
func appendNodeReconcilers(rs []string, spec *v1alpha1.Spec) ([]string, string) {
	mask := 0
	for i, on := range []struct {
		name string
		on   bool
	}{{reconciler.Trust, spec.TrustEnabled()}, {reconciler.Conntrack, spec.ConntrackEnabled()},
		{reconciler.Placement, spec.PlacementEnabled()}, {reconciler.Credentials, spec.CredentialsEnabled()}} {
		if on.on {
			rs = append(rs, on.name)
			mask |= 1 << i
		}
	}
	return rs, string(rune('a' + mask))
}

func updateNodesGauge(spec *v1alpha1.Spec, st *state.Store, m *metrics.Metrics) {
	var buf [4]string
	active, key := appendNodeReconcilers(buf[:0], spec)
	counts := st.CountNodes(key, func(n *state.Node) string {
		switch {
		case !n.Reachable && n.LastError != "":
			return metrics.NodeUnreachable
		case nodeInSync(n, active):
			return metrics.NodeInSync
		}
		return metrics.NodeOutOfSync
	})
	m.SetNodes(counts)
}

func nodeInSync(n *state.Node, active []string) bool {
	if !n.Reachable {
		return false // never contacted yet
	}
	for _, r := range active {
		c, ok := n.Concerns[r]
		if !ok || !c.InSync {
			return false
		}
	}
	return true
}

// syncFile makes path hold want with perm, listing what it changes in
// o.changes. Contents are compared as bytes; hashes are computed only to
// name a change.
func syncFile(ctx context.Context, c nodes.Conn, path string, want []byte, perm fs.FileMode, o *outcome) error {
	same, have, mode, err := nodes.FileMatches(ctx, c, path, want)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		o.changes = append(o.changes, fmt.Sprintf("create %s (sha256 %s, mode %s)", path, short(state.Hash(want)), octal(perm)))
		return c.WriteFile(ctx, path, want, perm)
	case err != nil:
		return err
	}
	if !same {
		o.changes = append(o.changes, fmt.Sprintf("update %s: sha256 %s -> %s", path, short(state.Hash(have)), short(state.Hash(want))))
		return c.WriteFile(ctx, path, want, perm)
	}
	if mode != perm {
		o.changes = append(o.changes, fmt.Sprintf("chmod %s %s -> %s", path, octal(mode), octal(perm)))
		return c.Chmod(ctx, path, perm)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + ".."
	}
	return h
}

func octal(m fs.FileMode) string { return strconv.FormatUint(uint64(m.Perm()), 8) }
