package controllers

import (
	"context"
	"net"
	"os"
	"sync"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/cron"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// MaintenanceKey is the one key the maintenance reconciler serves.
const MaintenanceKey = "gc"

// MaxMaintenanceResync bounds how long the reconciler sleeps when no run
// is due, so the storage figures stay fresh and a changed clock is noticed.
const MaxMaintenanceResync = 10 * time.Minute

// gcCloseTimeout bounds the restore a stopping operator makes with a fresh
// context (its own context is already cancelled then).
const gcCloseTimeout = 20 * time.Second

// Maintenance runs scheduled garbage collection inside a read-only window
// (internal/gcwindow decides each step). It asks for read-only through the
// RegistryMaintenance view, which the rendered config.yml follows
// (placement places it, the app restarts the registry with it: the usual
// path of a config change), waits until the served registry refuses
// uploads, runs garbage-collect over SSH on the agent holding the data, and
// restores writes. The window's record (gc-window.json, its own part of the
// PKI state set) is saved before each step, so whoever runs next closes a
// window left open by a crash, a shutdown or a lost leadership.
type Maintenance struct {
	Deps
	opts    MaintenanceOptions
	decider gcwindow.Decider

	mu sync.Mutex
	// ownRunID is the window this process opened; a record of another
	// run was left by a previous operator and is closed first.
	ownRunID string
	gc       gcRun
	// lastRun is when the last window opened, or when the schedule was
	// first seen by this process (the next run is the schedule's first
	// minute after it).
	lastRun  time.Time
	schedule string
	last     lastGC
	// base ends with Shutdown: it cancels a running garbage-collect.
	base       context.Context
	cancelBase context.CancelFunc
}

// lastGC is the last run this process finished, for status.
type lastGC struct {
	at     time.Time
	result gcwindow.Result
	freed  uint64
	err    string
}

// MaintenanceOptions are the maintenance reconciler's own options.
type MaintenanceOptions struct {
	// Exec reaches the data agent for its filesystem figures (the shared
	// executor: a statvfs request, no process on the node).
	Exec NodeExecutor
	// GCExec runs garbage-collect. It is an executor of its own: the
	// command is bounded by the garbage-collect timeout, not by
	// nodes.ssh.commandTimeout, and a connection dialled with another
	// bound would replace the other reconcilers' connection to the agent.
	GCExec NodeExecutor
	// PKIStore opens the store holding gc-window.json: a part of the PKI
	// state set (pki.Shared.Part). Default: the tls.stateDir directory.
	PKIStore func(*v1alpha1.Spec) pki.Store
	// Dial opens the upload probe's connections (net.Dialer by default).
	Dial DialFunc
	// ProbeTimeout bounds one upload probe (10s).
	ProbeTimeout time.Duration
	// ReadFile reads app.httpSecretFile for the binary runner's config.
	ReadFile func(string) ([]byte, error)
	// Wake enqueues the reconciler's key (when garbage-collect ends).
	Wake func()
}

// NewMaintenance returns the maintenance reconciler.
func NewMaintenance(d Deps, o MaintenanceOptions) *Maintenance {
	if o.PKIStore == nil {
		var sh pki.Shared
		o.PKIStore = func(s *v1alpha1.Spec) pki.Store {
			return sh.Part(pki.NewDirStore(s.TLS.StateDir), pki.GCWindowFiles...)
		}
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 10 * time.Second
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	if o.GCExec == nil {
		o.GCExec = o.Exec
	}
	r := &Maintenance{Deps: d.named(reconciler.Maintenance), opts: o}
	r.decider = gcwindow.Decider{Clock: d.Clock}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	return r
}

// Reconcile implements manager.Reconciler.
func (r *Maintenance) Reconcile(ctx context.Context, _ string) (manager.Result, error) {
	spec := r.Spec()
	if spec == nil || !spec.MaintenanceEnabled() {
		r.off()
		return manager.Result{}, nil
	}
	st := r.store(spec)
	w, err := loadWindow(ctx, st)
	if err != nil {
		// Nothing can be said about the window: writes come back.
		r.requestWritable()
		r.publishError(spec, err)
		return manager.Result{}, err
	}
	in, agent, err := r.inputs(ctx, spec, w)
	if err != nil {
		r.publishError(spec, err)
		return manager.Result{}, manager.TerminalError(err)
	}
	a := r.decider.Decide(in)
	res, actErr := r.act(ctx, spec, st, w, a, agent)
	r.observeStorage(ctx, spec, agent)
	r.publish(spec, a, agent, actErr)
	if actErr != nil {
		return manager.Result{}, actErr
	}
	return res, nil
}

// result turns a decision's wait into the manager's terms: an open
// window polls; an idle one checks again by the next run.
func result(a gcwindow.Action) manager.Result {
	if a.Window != nil && a.Kind != gcwindow.Finish {
		return manager.Result{RequeueAfter: max(a.RequeueAfter, time.Second)}
	}
	if a.RequeueAfter <= 0 || a.RequeueAfter > MaxMaintenanceResync {
		return manager.Result{ResyncAfter: MaxMaintenanceResync}
	}
	return manager.Result{ResyncAfter: a.RequeueAfter}
}

// inputs gathers what a decision looks at; agent is the data agent's
// node address ("" unknown).
func (r *Maintenance) inputs(ctx context.Context, spec *v1alpha1.Spec, w *gcwindow.Window) (gcwindow.Inputs, string, error) {
	g := spec.Maintenance.GarbageCollection
	in := gcwindow.Inputs{MaxReadOnly: g.MaxReadOnly.Duration, GCTimeout: g.Timeout.Duration, Window: w,
		Stopping: ctx.Err() != nil}
	if g.Schedule != "" {
		s, err := cron.Parse(g.Schedule)
		if err != nil {
			return in, "", err
		}
		in.Schedule = s
	}
	b, agent := r.blockers(spec)
	in.Blockers = b
	r.mu.Lock()
	if r.lastRun.IsZero() || r.schedule != g.Schedule {
		// A new schedule counts from now: it does not fire for a minute
		// that passed before it was set.
		r.lastRun, r.schedule = r.Clock.Now().UTC(), g.Schedule
	}
	in.LastRun, in.OwnRunID = r.lastRun, r.ownRunID
	in.GC = gcwindow.GC{Running: r.gc.running, Done: r.gc.done, Err: r.gc.err}
	r.mu.Unlock()
	in.Registry.ReadOnlyRequested = r.Store.RegistryMaintenance().ReadOnly
	if w != nil && (w.Phase == gcwindow.PhaseWaiting || w.Phase == gcwindow.PhaseClosing) && !spec.Report() {
		u, err := probeUploads(ctx, r.opts.Dial, spec.Registry, r.Store.PKI(), r.pullUser(spec), r.opts.ProbeTimeout)
		if err != nil {
			r.Log.V(1).Info("upload probe failed", "error", err.Error())
		}
		in.Registry.UploadsRefused, in.Registry.UploadsAccepted = u == uploadsRefused, u == uploadsAccepted
	}
	return in, agent, nil
}

// pullUser is who the upload probe asks as: the current pull user with
// auth on, nobody without.
func (r *Maintenance) pullUser(spec *v1alpha1.Spec) state.PullUser {
	if !spec.AuthEnabled() {
		return state.PullUser{}
	}
	return r.Store.PullSecret().Current
}
