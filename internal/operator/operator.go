// Package operator wires the pieces together: the config source, the
// cluster state, metrics, the manager with every reconciler, and the HTTP
// endpoints. cmd/registry-operator only parses flags and calls into here.
package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/config"
	"github.com/registry-operator/registry-operator/internal/leader"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Options are the command-line choices.
type Options struct {
	ConfigPath string
	Listen     string // "" serves nothing
	Once       bool
	Timeout    time.Duration // bounds Once and Plan
	Grace      time.Duration // bounds the drain on SIGTERM
	Version    string
	Log        logr.Logger
	Plan       bool // report-mode pass for `plan`: no election, nothing written
}

// Operator is one running instance.
type Operator struct {
	opts    Options
	src     *config.Source
	spec    func() *v1alpha1.Spec
	store   *state.Store
	metrics *metrics.Metrics
	mgr     *manager.Manager
	closers []func()
	ready   atomic.Bool
	leader  leaderView // nil without leader election
	elector *leader.Elector
	runners []func(context.Context)
	// stoppers run after the manager stopped (SIGTERM, lost leadership).
	stoppers []func()
}

// leaderView is what the status page needs from the elector.
type leaderView interface {
	IsLeader() bool
	Leader() leader.Identity
}

// New loads the config and builds every part; nothing runs yet.
func New(opts Options) (*Operator, error) {
	m := metrics.New(metrics.BuildInfo{Version: opts.Version})
	src, err := config.Open(opts.ConfigPath, m, opts.Log.WithName("config"), leaderElectionFixed)
	if err != nil {
		return nil, err
	}
	return build(opts, src, src.Spec, m)
}

func build(opts Options, src *config.Source, spec func() *v1alpha1.Spec, m *metrics.Metrics) (*Operator, error) {
	o := &Operator{opts: opts, src: src, spec: spec, store: state.New(), metrics: m}
	o.mgr = newManager(opts, spec, o.store, m)
	d := Deps{
		Spec: spec, Store: o.store, Metrics: m, Log: opts.Log, Clock: clock.RealClock{},
		Registry: func() *v1alpha1.Registry { return src.Registry() },
		Once:     opts.Once || opts.Plan,
	}
	if le := spec().LeaderElection; le != nil {
		if err := o.joinElection(le, &d); err != nil {
			o.Close()
			return nil, err
		}
	}
	w, err := setupReconcilers(o.mgr, d)
	if err != nil {
		o.Close()
		return nil, err
	}
	o.closers = append(o.closers, w.closers...)
	o.runners = w.runners
	o.stoppers = w.stoppers
	return o, nil
}

// Deps is what every reconciler constructor may use.
type Deps struct {
	Spec     func() *v1alpha1.Spec
	Registry func() *v1alpha1.Registry
	Store    *state.Store
	Metrics  *metrics.Metrics
	Log      logr.Logger
	Clock    clock.WithTicker
	// PKIStore is where the certificate state lives when it is not
	// tls.stateDir: ZooKeeper with stateStore zookeeper (read-only for a
	// plan). Nil means tls.stateDir.
	PKIStore pki.Store
	// Once: one pass, then exit (run --once, plan).
	Once bool
}

// Close releases connections the reconcilers hold.
func (o *Operator) Close() {
	for i := len(o.closers) - 1; i >= 0; i-- {
		o.closers[i]()
	}
}

// Store exposes the cluster state (plan output, tests).
func (o *Operator) Store() *state.Store { return o.store }

// Run reconciles until ctx is done. With Once it runs one pass and returns
// an error unless every key converged.
func (o *Operator) Run(ctx context.Context) error {
	defer o.Close()
	srvErr := make(chan error, 1)
	if o.opts.Listen != "" {
		ln, err := net.Listen("tcp", o.opts.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (choose another --listen address)", o.opts.Listen, err)
		}
		srv := newHTTPServer(o.Handler())
		go func() { srvErr <- srv.Serve(newLimitListener(ln, httpMaxConns)) }()
		// HTTP stops last so /metrics and probes stay up while workers drain.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		o.opts.Log.Info("serving", "addr", ln.Addr().String(), "endpoints", "/ /api/status /metrics /healthz /readyz")
	}
	if o.elector == nil {
		o.metrics.Leader.Set(1)
	}
	if o.opts.Once {
		return o.lead(ctx, o.runOnce)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := o.src.Watch(wctx, o.mgr.ResyncAll); err != nil {
			o.opts.Log.Error(err, "config watch stopped")
		}
	}()
	o.ready.Store(true)
	errc := make(chan error, 1)
	go func() { errc <- o.lead(wctx, o.reconcile) }()
	select {
	case err := <-srvErr:
		cancel()
		<-errc
		return fmt.Errorf("http server: %w", err)
	case err := <-errc:
		return err
	}
}

// lead runs fn while this instance leads: at once without leader election,
// otherwise for each term won (fenced the moment the term is in doubt).
func (o *Operator) lead(ctx context.Context, fn func(context.Context) error) error {
	if o.elector == nil {
		return fn(ctx)
	}
	var result error
	done := errors.New("pass finished")
	err := o.elector.Run(ctx, func(tctx context.Context) error {
		if err := fn(tctx); o.opts.Once && tctx.Err() == nil {
			result = err
			return done // one pass under the lock, then hand over
		}
		return nil
	}, o.mgr.Fence)
	if errors.Is(err, done) {
		return result
	}
	return err
}

// reconcile runs the manager and the event watchers until ctx is done.
func (o *Operator) reconcile(ctx context.Context) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, r := range o.runners {
		go r(rctx)
	}
	err := o.mgr.Run(ctx)
	for _, s := range o.stoppers {
		s()
	}
	return err
}

func (o *Operator) runOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.opts.Timeout)
	defer cancel()
	out, err := o.mgr.RunOnce(ctx)
	var failed []string
	for _, oc := range out {
		if oc.Err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", oc.Reconciler, oc.Key, oc.Err))
		}
	}
	failed = append(failed, OutOfSync(o.store)...)
	if err != nil {
		failed = append(failed, err.Error())
	}
	if len(failed) > 0 {
		return &NotInSyncError{Items: failed}
	}
	return nil
}

// NotInSyncError lists what a once-pass left out of sync.
type NotInSyncError struct{ Items []string }

func (e *NotInSyncError) Error() string {
	return fmt.Sprintf("%d item(s) not in sync", len(e.Items))
}

// OutOfSync lists what the state store says still differs from the spec.
func OutOfSync(s *state.Store) []string {
	var out []string
	if p := s.PKI(); p.Mode != "" && !p.Ready {
		out = append(out, "certificates: not ready: "+p.Reason)
	}
	for _, n := range s.Nodes() {
		if !n.Reachable && n.LastError != "" {
			out = append(out, fmt.Sprintf("node %s: unreachable: %s", n.Address, n.LastError))
			continue
		}
		for name, c := range n.Concerns {
			if !c.InSync {
				out = append(out, fmt.Sprintf("node %s: %s out of sync", n.Address, name))
			}
		}
	}
	for _, a := range s.Apps() {
		if !a.InSync {
			out = append(out, fmt.Sprintf("app %s: out of sync", a.ID))
		}
	}
	return out
}

// Handler serves /metrics, /healthz, /readyz and the status endpoints.
func (o *Operator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(o.metrics.Registry,
		promhttp.HandlerFor(o.metrics.Registry, promhttp.HandlerOpts{Registry: o.metrics.Registry})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Liveness depends on nothing outside the process.
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !o.ready.Load() {
			http.Error(w, "not ready: reconcilers not started", http.StatusServiceUnavailable)
			return
		}
		if o.elector != nil && !o.elector.Ready() {
			http.Error(w, "not ready: "+o.elector.Reason(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mountStatus(mux, o)
	return mux
}

// ErrChangesPending is returned by Plan when the cluster differs from the spec.
var ErrChangesPending = errors.New("changes pending")
