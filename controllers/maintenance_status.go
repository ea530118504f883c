package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/state"
)

// publish writes the maintenance slice and the window's gauges.
func (r *Maintenance) publish(spec *v1alpha1.Spec, a gcwindow.Action, agent string, actErr error) {
	g := spec.Maintenance.GarbageCollection
	prev := r.Store.Maintenance()
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	m := state.Maintenance{Schedule: g.Schedule, Next: a.Next, Status: a.Status, DataAgent: agent,
		LastRun: last.at, LastResult: string(last.result), LastFreedBytes: last.freed, LastError: last.err,
		StorageUsed: prev.StorageUsed, StorageFree: prev.StorageFree, StorageSize: prev.StorageSize, StorageAt: prev.StorageAt}
	open := a.Window != nil && a.Kind != gcwindow.Finish
	if spec.Report() && a.Kind == gcwindow.Open {
		// Nothing was recorded, so nothing opened.
		open, m.Status = false, "garbage collection due; not started: reconcile.mode is report"
	}
	if open {
		m.WindowOpen, m.RunID = true, a.Window.RunID
	}
	if actErr != nil {
		m.Status += " (" + actErr.Error() + ")"
	}
	if spec.Report() {
		m.Pending = reportPending(spec, a, agent)
	}
	r.Store.SetMaintenance(m)
	r.Metrics.GCMaxReadOnly.Set(g.MaxReadOnly.Duration.Seconds())
	r.Metrics.StorageWarnRatio.Set(*spec.Maintenance.Storage.WarnUsedRatio)
	if open {
		r.Metrics.ReadOnly.Set(1)
		r.Metrics.ReadOnlySince.Set(float64(a.Window.OpenedAt.Unix()))
	} else {
		r.Metrics.ReadOnly.Set(0)
		r.Metrics.ReadOnlySince.Set(0)
	}
}

// reportPending says what an enforcing operator would do: the next run
// and its command, or closing a recorded window.
func reportPending(spec *v1alpha1.Spec, a gcwindow.Action, agent string) []string {
	at := a.Next
	switch {
	case a.Kind == gcwindow.Open:
		at = a.Window.OpenedAt // due now
	case a.Window != nil:
		return []string{fmt.Sprintf("garbage collection %s is recorded open (%s): restore writes and remove its record",
			a.Window.RunID, a.Window.Phase)}
	case at.IsZero():
		return nil
	}
	g := spec.Maintenance.GarbageCollection
	on := agent
	if on == "" {
		on = "the registry's agent (unknown now)"
	}
	cmd := gcCommand(spec)
	what := "docker run --rm " + cmd.Image + " garbage-collect"
	if cmd.Runner == "binary" {
		what = cmd.BinaryPath + " garbage-collect"
	}
	if g.DeleteUntagged {
		what += " --delete-untagged"
	}
	return []string{fmt.Sprintf("garbage collection at %s on %s: make the registry read-only (at most %s), "+
		"wait until it refuses uploads, run %s, restore writes",
		at.UTC().Format(time.RFC3339), on, g.MaxReadOnly.Duration, what)}
}

// publishError records a pass that could not decide.
func (r *Maintenance) publishError(spec *v1alpha1.Spec, err error) {
	m := r.Store.Maintenance()
	m.Schedule = spec.Maintenance.GarbageCollection.Schedule
	m.Status = "error: " + err.Error()
	r.Store.SetMaintenance(m)
}

// observeStorage measures the data filesystem on the data agent (an SFTP
// statvfs request: no process starts on the node).
func (r *Maintenance) observeStorage(ctx context.Context, spec *v1alpha1.Spec, agent string) {
	if agent == "" || r.opts.Exec == nil {
		return
	}
	var u nodes.FSUsage
	err := r.opts.Exec.Do(ctx, nodes.ConfigFrom(spec.Nodes.SSH), agent, func(ctx context.Context, c nodes.Conn) error {
		var err error
		u, err = c.StatVFS(ctx, spec.App.DataHostPath)
		return err
	})
	if err != nil {
		r.Log.V(1).Info("statvfs of the registry's data failed", "agent", agent, "error", err.Error())
		return
	}
	used := u.Size - min(u.Free, u.Size)
	r.Metrics.StorageBytes.WithLabelValues("used").Set(float64(used))
	r.Metrics.StorageBytes.WithLabelValues("free").Set(float64(u.Free))
	m := r.Store.Maintenance()
	m.StorageUsed, m.StorageFree, m.StorageSize, m.StorageAt = used, u.Free, u.Size, r.Clock.Now()
	r.Store.SetMaintenance(m)
}

// off: maintenance is not in the spec; a read-only request is withdrawn.
func (r *Maintenance) off() {
	r.stopGC()
	r.requestWritable()
	r.Metrics.ReadOnly.Set(0)
	r.Metrics.ReadOnlySince.Set(0)
	r.Metrics.GCMaxReadOnly.Set(0)
	r.Metrics.StorageWarnRatio.Set(0)
	r.Store.SetMaintenance(state.Maintenance{})
}
