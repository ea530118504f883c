package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

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

// NodeDeps are what every per-node reconciler needs.
type NodeDeps struct {
	Spec    func() *v1alpha1.Spec
	Store   *state.Store
	Metrics *metrics.Metrics
	Clock   clock.PassiveClock
	Log     logr.Logger
	Exec    NodeExecutor
}

// outcome is what one reconciler found (and did) on one node.
type outcome struct {
	changes []string // applied, or in report mode what would be
	pending bool     // something still differs from the spec
	detail  string
	carried string // Concern.Hash: what the node now carries
	want    string // what the spec wants, to tell drift from rollout
}

// check inspects one node and, unless report is set, repairs it.
type check func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error

// nodePass runs check on the node named by key and records the result: the
// node's contact and concern in the store, its out_of_sync series, drift
// corrections, and the nodes gauge. Unreachable nodes come back as errors,
// so the manager retries them with backoff; a refused host key is terminal.
func (d *NodeDeps) nodePass(ctx context.Context, name, key string, spec *v1alpha1.Spec, fn check) (manager.Result, error) {
	node, ok := d.Store.Node(key)
	if !ok {
		return manager.Result{}, nil // left the fleet since it was queued
	}
	prev := node.Concerns[name]
	var o outcome
	err := d.Exec.Do(ctx, nodes.ConfigFrom(spec.Nodes.SSH), key, func(ctx context.Context, c nodes.Conn) error {
		return fn(ctx, c, spec, &o)
	})
	now := d.Clock.Now()
	defer d.updateNodesGauge(spec)
	if nodes.IsUnreachable(err) {
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
	c := state.Concern{InSync: err == nil && !o.pending, Detail: o.detail, Changes: o.changes, Hash: o.carried, Checked: now}
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
	if err == nil && !spec.Report() && len(o.changes) > 0 && wasSynced {
		d.Metrics.DriftCorrections.WithLabelValues(name).Inc()
		d.Log.Info("drift corrected", "reconciler", name, "node", key, "changes", o.changes)
	} else if len(o.changes) > 0 && !spec.Report() {
		d.Log.Info("node updated", "reconciler", name, "node", key, "changes", o.changes)
	}
	if err != nil {
		return manager.Result{}, fmt.Errorf("%s on node %s: %w", name, key, err)
	}
	return manager.Result{}, nil
}

// updateNodesGauge recomputes registry_operator_nodes from the store after
// a pass, so a scrape only reads numbers.
func (d *NodeDeps) updateNodesGauge(spec *v1alpha1.Spec) {
	updateNodesGauge(spec, d.Store, d.Metrics)
}

// nodeReconcilers lists the per-node reconcilers the spec turns on.
func nodeReconcilers(spec *v1alpha1.Spec) []string {
	var rs []string
	if spec.TrustEnabled() {
		rs = append(rs, reconciler.Trust)
	}
	if spec.ConntrackEnabled() {
		rs = append(rs, reconciler.Conntrack)
	}
	if spec.PlacementEnabled() {
		rs = append(rs, reconciler.Placement)
	}
	return rs
}

func updateNodesGauge(spec *v1alpha1.Spec, st *state.Store, m *metrics.Metrics) {
	active := nodeReconcilers(spec)
	counts := st.CountNodes(strings.Join(active, ","), func(n *state.Node) string {
		switch {
		case !n.Reachable && n.LastError != "":
			return metrics.NodeUnreachable
		case nodeInSync(n, active):
			return metrics.NodeInSync
		}
		return metrics.NodeOutOfSync
	})
	for _, s := range []string{metrics.NodeInSync, metrics.NodeOutOfSync, metrics.NodeUnreachable} {
		m.Nodes.WithLabelValues(s).Set(float64(counts[s]))
	}
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

// syncFile makes path hold want with perm (or, in report mode, says what it
// would change). It returns the hash of what the file held before.
func syncFile(ctx context.Context, c nodes.Conn, report bool, path string, want []byte, perm fs.FileMode, o *outcome) (string, error) {
	have, mode, err := c.ReadFile(ctx, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		o.changes = append(o.changes, fmt.Sprintf("create %s (sha256 %s, mode %s)", path, short(state.Hash(want)), octal(perm)))
		return "", write(ctx, c, report, path, want, perm, o)
	case err != nil:
		return "", err
	}
	old := state.Hash(have)
	if old != state.Hash(want) {
		o.changes = append(o.changes, fmt.Sprintf("update %s: sha256 %s -> %s", path, short(old), short(state.Hash(want))))
		return old, write(ctx, c, report, path, want, perm, o)
	}
	if mode != perm {
		o.changes = append(o.changes, fmt.Sprintf("chmod %s %s -> %s", path, octal(mode), octal(perm)))
		if report {
			o.pending = true
			return old, nil
		}
		return old, c.Chmod(ctx, path, perm)
	}
	return old, nil
}

func write(ctx context.Context, c nodes.Conn, report bool, path string, data []byte, perm fs.FileMode, o *outcome) error {
	if report {
		o.pending = true
		return nil
	}
	return c.WriteFile(ctx, path, data, perm)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + ".."
	}
	return h
}

func octal(m fs.FileMode) string { return strconv.FormatUint(uint64(m.Perm()), 8) }
