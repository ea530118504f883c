package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// MarathonClient is what the app reconciler needs from Marathon
// (*marathon.Client implements it).
type MarathonClient interface {
	GetApp(ctx context.Context, id string) (*marathon.AppStatus, error)
	CreateApp(ctx context.Context, app *marathon.App) (string, error)
	UpdateApp(ctx context.Context, id string, body map[string]any, force bool) (string, error)
	RestartApp(ctx context.Context, id string, force bool) (string, error)
	Watch(ctx context.Context, clk clock.Clock, log logr.Logger, fn func(marathon.Event)) error
}

// AppOptions are the app reconciler's optional dependencies.
type AppOptions struct {
	// Owner is metadata.name (defaulted): the value of the owner label on
	// the apps.
	Owner string
	// NewClient builds a Marathon client for spec.marathon; the reconciler
	// builds a new one when that section changes.
	NewClient func(m *v1alpha1.MarathonSpec) (MarathonClient, error)
	// ReadFile reads spec.app.httpSecretFile (os.ReadFile by default) to
	// render the registry's config.yml (or its env without one).
	ReadFile func(string) ([]byte, error)
	// Dial opens the probe's TCP connections (net.Dialer by default).
	Dial DialFunc
	// PollInterval is how often a running deployment is looked at (5s).
	PollInterval time.Duration
	// ProbeTimeout bounds one TLS probe of one endpoint (10s).
	ProbeTimeout time.Duration
}

// AppReconciler keeps the registry app and the optional UI app as the spec
// says, healthy, and serving the current certificate. Keys are app ids
// (AppKeys). It never deletes an app, never scales because Marathon
// failed, and touches only the app ids the spec names.
type AppReconciler struct {
	Deps
	opts AppOptions

	mu        sync.Mutex
	client    MarathonClient
	clientKey string
	track     map[string]*appTrack
}

// appTrack is what one app's passes remember between each other. It is
// not cluster state: after a restart of the operator, a pass starts over
// from what Marathon says.
type appTrack struct {
	deployment    string // the deployment this reconciler started and follows
	deployKind    string // create | update | restart
	deployStarted time.Time
	deployGen     int64     // PKI generation a restart deployment is for
	lockedSince   time.Time // first pass that found a change blocked by a deployment
	rejected      string    // hash of the desired app Marathon refused (422)
	rejectedErr   error
	syncedHash    string // hash of the desired app when the app was last in sync
}

// NewApp builds the app reconciler.
func NewApp(d Deps, opts AppOptions) *AppReconciler {
	if opts.NewClient == nil {
		opts.NewClient = func(ms *v1alpha1.MarathonSpec) (MarathonClient, error) {
			return marathon.New(marathon.OptionsFromSpec(ms, d.Metrics))
		}
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Dial == nil {
		opts.Dial = (&net.Dialer{}).DialContext
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 10 * time.Second
	}
	return &AppReconciler{Deps: d.named(reconciler.App), opts: opts, track: map[string]*appTrack{}}
}

// AppKeys lists the app ids the spec names: the registry app and, when
// enabled, the UI app and the pull-through mirror.
func AppKeys(s *v1alpha1.Spec) []string {
	var keys []string
	if s.AppEnabled() {
		keys = append(keys, s.App.ID)
	}
	if s.UIEnabled() && s.UI.ID != "" {
		keys = append(keys, s.UI.ID)
	}
	if s.MirrorEnabled() {
		keys = append(keys, s.Mirror.ID)
	}
	return keys
}

// pass carries one Reconcile's values.
type pass struct {
	key     string
	spec    *v1alpha1.Spec
	desired *marathon.App
	hash    string
	tr      *appTrack
	st      state.App
	now     time.Time
	client  MarathonClient
	log     logr.Logger
	timeout time.Duration // app.deploymentTimeout
}

// Reconcile implements manager.Reconciler.
func (r *AppReconciler) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := r.Spec()
	if !slices.Contains(AppKeys(spec), key) {
		r.forget(key)
		return manager.Result{}, nil
	}
	p := &pass{key: key, spec: spec, now: r.Clock.Now(), log: r.Log.WithValues("app", key), tr: r.trackOf(key),
		timeout: spec.DeploymentTimeout()}
	prev, _ := r.Store.App(key)
	p.st = state.App{ID: key, Checked: p.now, RestartedForGeneration: prev.RestartedForGeneration,
		ServedSerial: prev.ServedSerial}
	r.Metrics.InitApp(key)

	var err error
	if p.desired, err = r.build(spec, key); err != nil {
		return r.fail(p, prev, err)
	}
	p.hash = hashApp(p.desired)
	p.st.Desired = p.desired.Instances
	if p.client, err = r.clientFor(spec.Marathon); err != nil {
		return r.fail(p, prev, err)
	}
	// The one place report mode is decided for the apps: a report-mode
	// pass reads Marathon and every write it would send is recorded
	// instead (writeFailed meets marathon.ErrNotSent).
	if spec.Report() {
		p.client = marathon.Recording(p.client)
	}
	cur, err := p.client.GetApp(ctx, key)
	switch {
	case marathon.IsNotFound(err):
		if res, wait, err := r.waitForConfig(p, nil); wait {
			return res, err
		}
		return r.create(ctx, p)
	case err != nil:
		// Marathon is down or odd: keep the last observation, change nothing.
		return r.fail(p, prev, fmt.Errorf("read app %s: %w", key, err))
	}
	return r.reconcileExisting(ctx, p, cur)
}

func (r *AppReconciler) reconcileExisting(ctx context.Context, p *pass, cur *marathon.AppStatus) (manager.Result, error) {
	labels, _ := cur.Definition["labels"].(map[string]any)
	if owner, _ := labels[marathon.OwnerLabel].(string); owner != "" && owner != r.opts.Owner {
		return r.record(p, manager.TerminalError(fmt.Errorf("app %s carries %s=%s, not %s: another registry owns it; "+
			"change app.id or remove the label", p.key, marathon.OwnerLabel, owner, r.opts.Owner)))
	}
	p.st.Exists, p.st.Version = true, cur.Version
	p.st.Running, p.st.Healthy = cur.TasksRunning, cur.TasksRunning
	if cur.HealthChecks > 0 {
		p.st.Healthy = cur.TasksHealthy
	}
	for _, t := range cur.Tasks {
		if !slices.Contains(p.st.Hosts, t.Host) && t.Host != "" {
			p.st.Hosts = append(p.st.Hosts, t.Host)
		}
	}
	diff := marathon.Diff(p.desired, cur.Definition)
	p.st.Diff = diff

	if res, done, err := r.follow(p, cur); done {
		return res, err
	}
	if len(diff) > 0 {
		if res, wait, err := r.waitForConfig(p, cur); wait {
			return res, err
		}
		return r.update(ctx, p, cur)
	}
	p.tr.lockedSince = time.Time{}
	p.tr.syncedHash = p.hash
	if len(cur.Deployments) > 0 {
		// Someone else's deployment: look again when it is over.
		p.st.InSync = false
		return r.recordRequeue(p, nil)
	}
	if a, ok := servedAppFor(p.spec, p.key); ok && p.spec.TLSEnabled() {
		return r.rotate(ctx, p, cur, a)
	} else if key := p.spec.App; key != nil && p.key == key.ID && p.spec.TLSEnabled() {
		return r.rotate(ctx, p, cur, servedApp{kind: servedRegistry, app: key, endpoint: p.spec.Registry})
	}
	return r.record(p, r.healthError(p))
}

// follow tracks the deployment this reconciler started. done=true ends the
// pass (still running, or stuck without a change to force through).
func (r *AppReconciler) follow(p *pass, cur *marathon.AppStatus) (manager.Result, bool, error) {
	tr := p.tr
	if tr.deployment == "" {
		return manager.Result{}, false, nil
	}
	if !slices.Contains(cur.Deployments, tr.deployment) {
		p.log.Info("deployment finished", "deployment", tr.deployment, "kind", tr.deployKind,
			"took", p.now.Sub(tr.deployStarted).String())
		if tr.deployKind == "restart" {
			p.st.RestartedForGeneration = max(p.st.RestartedForGeneration, tr.deployGen)
		}
		tr.deployment = ""
		return manager.Result{}, false, nil
	}
	age := p.now.Sub(tr.deployStarted)
	if age < p.timeout {
		p.st.InSync = false
		res, err := r.recordRequeue(p, nil)
		return res, true, err
	}
	if len(p.st.Diff) > 0 {
		return manager.Result{}, false, nil // update() forces the change through
	}
	err := fmt.Errorf("deployment %s (%s of %s) has not finished after %s (app.deploymentTimeout): Marathon never "+
		"times deployments out; check the tasks and /v2/queue, or change the spec so the operator forces a new one",
		tr.deployment, tr.deployKind, p.key, age.Round(time.Second))
	res, err := r.record(p, err)
	return res, true, err
}

// healthError says why an app whose definition is in sync is still not
// well: fewer running or healthy tasks than instances.
func (r *AppReconciler) healthError(p *pass) error {
	if p.st.Running < p.st.Desired || p.st.Healthy < p.st.Desired {
		p.st.InSync = false
		return fmt.Errorf("app %s has %d running and %d healthy of %d instances", p.key, p.st.Running,
			p.st.Healthy, p.st.Desired)
	}
	p.st.InSync = true
	return nil
}

// record writes the pass's state and metrics and returns err.
func (r *AppReconciler) record(p *pass, err error) (manager.Result, error) {
	if err != nil {
		p.st.InSync = false
		p.st.LastError = err.Error()
	}
	r.publish(p)
	return manager.Result{}, err
}

// recordRequeue records and asks to be looked at again soon (a deployment
// is running or a lock is being waited out).
func (r *AppReconciler) recordRequeue(p *pass, err error) (manager.Result, error) {
	p.st.InSync = false
	r.publish(p)
	return manager.Result{RequeueAfter: r.opts.PollInterval}, err
}

// fail records an error without a fresh observation of the app.
func (r *AppReconciler) fail(p *pass, prev state.App, err error) (manager.Result, error) {
	p.st.Exists, p.st.Version, p.st.Hosts, p.st.Diff = prev.Exists, prev.Version, prev.Hosts, prev.Diff
	p.st.Running, p.st.Healthy = prev.Running, prev.Healthy
	return r.record(p, err)
}

func (r *AppReconciler) publish(p *pass) {
	if len(p.st.Diff) > 0 {
		p.st.InSync = false
	}
	r.Store.SetApp(p.st)
	r.Metrics.AppInstances.WithLabelValues(p.key, "desired").Set(float64(p.st.Desired))
	r.Metrics.AppInstances.WithLabelValues(p.key, "running").Set(float64(p.st.Running))
	r.Metrics.AppInstances.WithLabelValues(p.key, "healthy").Set(float64(p.st.Healthy))
	r.Metrics.SetOutOfSync(reconciler.App, p.key, !p.st.InSync)
}

// forget drops an app the spec no longer names from state and metrics. The
// app itself stays in Marathon: the operator never deletes one.
func (r *AppReconciler) forget(key string) {
	r.mu.Lock()
	delete(r.track, key)
	r.mu.Unlock()
	r.Store.RemoveApp(key)
	r.Metrics.ForgetApp(key)
}

func (r *AppReconciler) trackOf(key string) *appTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.track[key]
	if !ok {
		t = &appTrack{}
		r.track[key] = t
	}
	return t
}

func (r *AppReconciler) build(spec *v1alpha1.Spec, key string) (*marathon.App, error) {
	if spec.App != nil && spec.App.ID == key {
		in, err := r.registryInputs(spec)
		if err != nil {
			return nil, err
		}
		return marathon.BuildRegistryApp(r.opts.Owner, spec, in)
	}
	if a, ok := servedAppFor(spec, key); ok && a.kind == servedMirror {
		cfg, err := a.render(spec, r.Store, r.opts.ReadFile)
		if err != nil {
			return nil, err
		}
		return marathon.BuildMirrorApp(r.opts.Owner, spec, cfg.Hash)
	}
	return marathon.BuildUIApp(r.opts.Owner, spec)
}

func (r *AppReconciler) clientFor(m *v1alpha1.MarathonSpec) (MarathonClient, error) {
	b, _ := json.Marshal(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client != nil && r.clientKey == string(b) {
		return r.client, nil
	}
	c, err := r.opts.NewClient(m)
	if err != nil {
		return nil, fmt.Errorf("marathon client: %w", err)
	}
	r.client, r.clientKey = c, string(b)
	return c, nil
}

// Watch follows Marathon's event stream and calls enqueue with each app id
// of the spec an event concerns, and with every key after a (re)connect
// (events in the gap are lost). It returns when ctx ends. The periodic
// resync stays necessary: events can be dropped and reordered.
func (r *AppReconciler) Watch(ctx context.Context, enqueue func(key string)) error {
	spec := r.Spec()
	if spec.Marathon == nil || !spec.Marathon.EventStreamEnabled() {
		<-ctx.Done()
		return ctx.Err()
	}
	c, err := r.clientFor(spec.Marathon)
	if err != nil {
		return err
	}
	return c.Watch(ctx, r.Clock, r.Log, func(e marathon.Event) {
		keys := AppKeys(r.Spec())
		if e.Type == marathon.EventAttached {
			for _, k := range keys {
				enqueue(k)
			}
			return
		}
		for _, id := range e.AppIDs {
			if slices.Contains(keys, id) {
				enqueue(id)
			}
		}
	})
}

func hashApp(a *marathon.App) string {
	b, _ := json.Marshal(a)
	return state.Hash(b)
}

func prefixed(p string, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = p + l
	}
	return out
}
