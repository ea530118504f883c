// Package metrics defines every Prometheus series the operator exports. The
// names and labels are a contract (alerts and dashboards depend on them), so
// they live in one file. Loops set these as they observe; nothing here is
// computed at scrape time.
package metrics

import (
	"github.com/registry-operator/registry-operator/internal/reconciler"

	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const ns = "registry_operator"

// Results of one reconcile.
const (
	ResultSuccess = "success"
	ResultError   = "error"
	ResultRequeue = "requeue"
)

// Node states for registry_operator_nodes.
const (
	NodeInSync      = "in_sync"
	NodeOutOfSync   = "out_of_sync"
	NodeUnreachable = "unreachable"
)

// Metrics holds every series on a dedicated registry.
type Metrics struct {
	Registry *prometheus.Registry

	ReconcileTotal    *prometheus.CounterVec
	ReconcileDuration *prometheus.HistogramVec
	LastSuccess       *prometheus.GaugeVec

	OutOfSync        *prometheus.GaugeVec
	DriftCorrections *prometheus.CounterVec
	Nodes            *prometheus.GaugeVec
	HostKeyMismatch  *prometheus.CounterVec
	RejectedAgents   prometheus.Counter

	CertExpiration *prometheus.GaugeVec
	CertRenewal    *prometheus.GaugeVec
	CertReady      *prometheus.GaugeVec

	PullPasswordGeneration   prometheus.Gauge
	PullPasswordNextRotation prometheus.Gauge
	PullCredentialsLagging   prometheus.Gauge
	PullCredentialsOverdue   prometheus.Gauge

	AppInstances  *prometheus.GaugeVec
	ProbeSuccess  prometheus.Gauge
	ProbeDuration prometheus.Gauge

	GCRuns           *prometheus.CounterVec
	GCLastSuccess    prometheus.Gauge
	GCDuration       prometheus.Gauge
	GCFreedBytes     prometheus.Gauge
	GCMaxReadOnly    prometheus.Gauge
	ReadOnly         prometheus.Gauge
	ReadOnlySince    prometheus.Gauge
	StorageBytes     *prometheus.GaugeVec
	StorageWarnRatio prometheus.Gauge

	ConfigReloadSuccessful prometheus.Gauge
	ConfigReloadTimestamp  prometheus.Gauge

	Leader prometheus.Gauge

	SSHSessions      prometheus.Counter
	MarathonRequests *prometheus.CounterVec

	// outOfSync holds the OutOfSync series already created, so a node pass
	// sets its gauge without hashing its labels again; mu orders it with
	// the deletions of ForgetTarget and ForgetApp.
	mu        sync.Mutex
	outOfSync map[seriesKey]prometheus.Gauge
	// nodeStates are the three Nodes series, by state.
	nodeStates map[string]prometheus.Gauge
	// reconciles are each known reconciler's series, made in New and
	// only read after.
	reconciles map[string]reconcileSeries
}

// reconcileSeries are one reconciler's reconcile series.
type reconcileSeries struct {
	total    map[string]prometheus.Counter // by result
	duration prometheus.Observer
	last     prometheus.Gauge
}

type seriesKey struct{ reconciler, target string }

// BuildInfo is what registry_operator_build_info reports.
type BuildInfo struct{ Version, Revision string }

// New creates and registers every series and initialises each labelled
// series that can exist, so absence means "operator down", not "no problem".
func New(bi BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{Registry: reg, outOfSync: map[seriesKey]prometheus.Gauge{}, nodeStates: map[string]prometheus.Gauge{},
		reconciles: map[string]reconcileSeries{}}

	m.ReconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reconcile_total",
		Help: "Reconciles by reconciler and result (success, error, requeue)."}, []string{"reconciler", "result"})
	m.ReconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "reconcile_duration_seconds",
		Help:    "Time one reconcile of one key took.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}}, []string{"reconciler"})
	m.LastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_success_timestamp_seconds",
		Help: "Unix time of the reconciler's last successful reconcile."}, []string{"reconciler"})
	m.OutOfSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "out_of_sync",
		Help: "1 while the target differs from the spec after the reconciler's last attempt."}, []string{"reconciler", "target"})
	m.DriftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "drift_corrections_total",
		Help: "Repairs of something that had been in sync: drift that keeps coming back shows here."}, []string{"reconciler"})
	m.Nodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "nodes",
		Help: "Agents by state (in_sync, out_of_sync, unreachable)."}, []string{"state"})
	m.HostKeyMismatch = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ssh_host_key_mismatch_total",
		Help: "SSH connections refused because the host key did not match known_hosts (a security event)."}, []string{"target"})
	m.RejectedAgents = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "discovery_rejected_agents_total",
		Help: "Agents Mesos reported with an address or hostname that is not an IP address or DNS name; skipped."})
	m.CertExpiration = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "certificate_expiration_timestamp_seconds",
		Help: "Unix time the certificate expires (NotAfter)."}, []string{"cert"})
	m.CertRenewal = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "certificate_renewal_timestamp_seconds",
		Help: "Unix time the operator will renew the certificate."}, []string{"cert"})
	m.CertReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "certificate_ready",
		Help: "1 when the certificate is valid and in use, 0 otherwise."}, []string{"cert"})
	m.PullPasswordGeneration = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pull_password_generation",
		Help: "Generation of the current pull password agents pull with (0 before the first)."})
	m.PullPasswordNextRotation = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns,
		Name: "pull_password_next_rotation_timestamp_seconds", Help: "Unix time the pull password is next rotated."})
	m.PullCredentialsLagging = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pull_credentials_lagging_agents",
		Help: "Reachable agents whose pull credentials are not the current generation."})
	m.PullCredentialsOverdue = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pull_credentials_overdue",
		Help: "1 while a pull password rotation has waited longer than its grace for agents to take the new credentials."})
	m.AppInstances = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "app_instances",
		Help: "Instances of a Marathon app the operator owns, by state (desired, running, healthy)."}, []string{"app", "state"})
	m.ProbeSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "registry_probe_success",
		Help: "1 when the last TLS probe of the registry verified the chain, SANs and serial and got an answer from /v2/."})
	m.ProbeDuration = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "registry_probe_duration_seconds",
		Help: "Duration of the last TLS probe of the registry."})
	m.GCRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "gc_runs_total",
		Help: "Garbage-collection windows closed, by result (success, failed, timeout, aborted)."}, []string{"result"})
	m.GCLastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "gc_last_success_timestamp_seconds",
		Help: "Unix time the last successful garbage collection finished (0: none since the operator started)."})
	m.GCDuration = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "gc_duration_seconds",
		Help: "How long the last garbage-collection window was open (read-only), in seconds."})
	m.GCFreedBytes = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "gc_freed_bytes",
		Help: "Bytes the last garbage collection freed on the data filesystem (free space after less before)."})
	m.GCMaxReadOnly = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "gc_max_read_only_seconds",
		Help: "spec.maintenance.garbageCollection.maxReadOnly in seconds (0 when maintenance is off)."})
	m.ReadOnly = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "registry_read_only",
		Help: "1 while a garbage-collection window is open (the registry is, or is being made, read-only)."})
	m.ReadOnlySince = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "registry_read_only_since_timestamp_seconds",
		Help: "Unix time the open garbage-collection window opened (0 when none is open)."})
	m.StorageBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "registry_storage_bytes",
		Help: "The registry's data filesystem on its agent, by state (used, free), from SFTP statvfs."}, []string{"state"})
	m.StorageWarnRatio = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "registry_storage_warn_used_ratio",
		Help: "spec.maintenance.storage.warnUsedRatio (0 when maintenance is off)."})
	m.ConfigReloadSuccessful = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_successful",
		Help: "1 when the last attempt to load the config file succeeded."})
	m.ConfigReloadTimestamp = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful config load."})
	m.Leader = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "leader",
		Help: "1 on the instance that reconciles, 0 on followers."})
	m.SSHSessions = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "ssh_sessions_total",
		Help: "SSH sessions opened on nodes (exec or sftp subsystem)."})
	m.MarathonRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "marathon_requests_total",
		Help: "HTTP requests sent to Marathon, by method."}, []string{"method"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build information; always 1."}, []string{"version", "revision", "goversion"})

	for _, c := range []prometheus.Collector{m.ReconcileTotal, m.ReconcileDuration, m.LastSuccess, m.OutOfSync,
		m.DriftCorrections, m.Nodes, m.HostKeyMismatch, m.RejectedAgents, m.CertExpiration, m.CertRenewal, m.CertReady,
		m.PullPasswordGeneration, m.PullPasswordNextRotation, m.PullCredentialsLagging, m.PullCredentialsOverdue, m.AppInstances,
		m.ProbeSuccess, m.ProbeDuration, m.ConfigReloadSuccessful, m.ConfigReloadTimestamp, m.Leader,
		m.SSHSessions, m.MarathonRequests, build, m.GCRuns, m.GCLastSuccess, m.GCDuration, m.GCFreedBytes,
		m.GCMaxReadOnly, m.ReadOnly, m.ReadOnlySince, m.StorageBytes, m.StorageWarnRatio,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}

	rev := bi.Revision
	if rev == "" {
		rev = vcsRevision()
	}
	build.WithLabelValues(bi.Version, rev, runtime.Version()).Set(1)
	for _, r := range reconciler.All() {
		rs := reconcileSeries{total: map[string]prometheus.Counter{},
			duration: m.ReconcileDuration.WithLabelValues(r), last: m.LastSuccess.WithLabelValues(r)}
		for _, res := range []string{ResultSuccess, ResultError, ResultRequeue} {
			rs.total[res] = m.ReconcileTotal.WithLabelValues(r, res)
		}
		m.reconciles[r] = rs
		m.DriftCorrections.WithLabelValues(r)
	}
	for _, s := range []string{NodeInSync, NodeOutOfSync, NodeUnreachable} {
		m.nodeStates[s] = m.Nodes.WithLabelValues(s)
	}
	for _, c := range []string{"ca", "server"} {
		m.CertExpiration.WithLabelValues(c)
		m.CertRenewal.WithLabelValues(c)
		m.CertReady.WithLabelValues(c)
	}
	for _, r := range []string{"success", "failed", "timeout", "aborted"} {
		m.GCRuns.WithLabelValues(r)
	}
	for _, st := range []string{"used", "free"} {
		m.StorageBytes.WithLabelValues(st)
	}
	for _, meth := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		m.MarathonRequests.WithLabelValues(meth)
	}
	return m
}

// InitApp creates the app_instances series of an app the spec names.
func (m *Metrics) InitApp(id string) {
	for _, s := range []string{"desired", "running", "healthy"} {
		m.AppInstances.WithLabelValues(id, s)
	}
}

// ForgetApp deletes the series of an app the spec no longer names.
func (m *Metrics) ForgetApp(id string) {
	m.AppInstances.DeletePartialMatch(prometheus.Labels{"app": id})
	m.forgetOutOfSync(id)
}

// ForgetTarget deletes every per-target series of a node that left.
func (m *Metrics) ForgetTarget(target string) {
	m.forgetOutOfSync(target)
	m.HostKeyMismatch.DeletePartialMatch(prometheus.Labels{"target": target})
}

func (m *Metrics) forgetOutOfSync(target string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.OutOfSync.DeletePartialMatch(prometheus.Labels{"target": target})
	for k := range m.outOfSync {
		if k.target == target {
			delete(m.outOfSync, k)
		}
	}
}

// SetOutOfSync records whether target differs from the spec for reconciler.
func (m *Metrics) SetOutOfSync(reconciler, target string, out bool) {
	v := 0.0
	if out {
		v = 1
	}
	k := seriesKey{reconciler, target}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.outOfSync[k]
	if !ok {
		g = m.OutOfSync.WithLabelValues(reconciler, target)
		m.outOfSync[k] = g
	}
	g.Set(v)
}

// Reconciled records one reconcile of reconciler: its result (a Result*
// constant), how long it took, and when it ended if it succeeded.
func (m *Metrics) Reconciled(reconciler, result string, took time.Duration, end time.Time) {
	rs, ok := m.reconciles[reconciler]
	total, known := rs.total[result]
	if !ok || !known {
		rs = reconcileSeries{duration: m.ReconcileDuration.WithLabelValues(reconciler), last: m.LastSuccess.WithLabelValues(reconciler)}
		total = m.ReconcileTotal.WithLabelValues(reconciler, result)
	}
	rs.duration.Observe(took.Seconds())
	total.Inc()
	if result != ResultError {
		rs.last.Set(float64(end.Unix()))
	}
}

// SetNodes sets registry_operator_nodes to counts, by state (a state
// missing from counts is 0).
func (m *Metrics) SetNodes(counts map[string]int) {
	for s, g := range m.nodeStates {
		g.Set(float64(counts[s]))
	}
}

func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
