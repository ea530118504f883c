package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

const nodeA, nodeB = "198.18.0.11", "198.18.0.12"

func publishBundle(st *state.Store, bundle string) {
	b := []byte(bundle)
	st.SetPKI(state.PKI{Ready: true, Bundle: b, BundleHash: state.Hash(b),
		ServerChain: []byte("chain-" + bundle), ServerHash: state.Hash([]byte("chain-" + bundle)), ServerKey: []byte("key-" + bundle)})
}

func TestTrustReportThenEnforce(t *testing.T) {
	e := newNodeEnv(t, nil)
	publishBundle(e.store, "CA1")
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	ca := "/etc/docker/certs.d/registry.test:5000/ca.crt"

	e.spec.Reconcile.Mode = v1alpha1.ModeReport
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Trust)
	want := fmt.Sprintf("create %s (sha256 %s, mode 644)", ca, short(state.Hash([]byte("CA1"))))
	if c.InSync || !slices.Contains(c.Changes, want) || e.node(nodeA).writes != 0 {
		t.Fatalf("report: %+v, writes %d; want change %q and no writes", c, e.node(nodeA).writes, want)
	}
	if v := testutil.ToFloat64(e.metrics.OutOfSync.WithLabelValues(reconciler.Trust, nodeA)); v != 1 {
		t.Errorf("out_of_sync = %v in report mode", v)
	}

	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	n := e.node(nodeA)
	if string(n.files[ca]) != "CA1" || n.modes[ca] != 0o644 {
		t.Fatalf("ca.crt = %q %o", n.files[ca], n.modes[ca])
	}
	if _, ok := n.files["/etc/docker/certs.d/registry.test:5000/"+ownerMarker]; !ok {
		t.Error("no ownership marker in the directory the operator created")
	}
	c = e.concern(t, nodeA, reconciler.Trust)
	if !c.InSync || c.Hash != state.Hash([]byte("CA1")) {
		t.Fatalf("after enforce: %+v", c)
	}
	if all, _ := e.store.NodesCarry(reconciler.Trust, state.Hash([]byte("CA1"))); all {
		t.Error("node B has not been reconciled but NodesCarry says every node carries the bundle")
	}

	// Steady state: no writes, no changes.
	writes := n.writes
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if n.writes != writes || len(e.concern(t, nodeA, reconciler.Trust).Changes) != 0 {
		t.Errorf("steady-state pass wrote or listed changes: %+v", e.concern(t, nodeA, reconciler.Trust))
	}

	// A hand edit is drift: repaired and counted.
	n.files[ca] = []byte("tampered")
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if string(n.files[ca]) != "CA1" {
		t.Fatal("hand-edited ca.crt not repaired")
	}
	if v := testutil.ToFloat64(e.metrics.DriftCorrections.WithLabelValues(reconciler.Trust)); v != 1 {
		t.Errorf("drift corrections = %v, want 1", v)
	}

	// A new bundle is a rollout, not drift.
	publishBundle(e.store, "CA1+CA2")
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c = e.concern(t, nodeA, reconciler.Trust)
	if string(n.files[ca]) != "CA1+CA2" || c.Hash != state.Hash([]byte("CA1+CA2")) {
		t.Fatalf("new bundle not rolled out: %+v", c)
	}
	if !strings.Contains(strings.Join(c.Changes, "\n"), "update "+ca+": sha256 ") {
		t.Errorf("changes = %q", c.Changes)
	}
	if v := testutil.ToFloat64(e.metrics.DriftCorrections.WithLabelValues(reconciler.Trust)); v != 1 {
		t.Errorf("a bundle rollout counted as drift: %v", v)
	}
}

func TestTrustPort443AndRuntimes(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Registry.Address = "registry.test:443"
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeContainers, v1alpha1.RuntimeContainerd}
	})
	publishBundle(e.store, "CA1")
	if _, err := NewTrust(e.deps, e.opts).Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	n := e.node(nodeA)
	for _, p := range []string{
		"/etc/docker/certs.d/registry.test:443/ca.crt", "/etc/docker/certs.d/registry.test/ca.crt",
		"/etc/containers/certs.d/registry.test:443/ca.crt", "/etc/containerd/certs.d/registry.test/ca.crt",
	} {
		if string(n.files[p]) != "CA1" {
			t.Errorf("%s = %q", p, n.files[p])
		}
	}
	h := string(n.files["/etc/containerd/certs.d/registry.test:443/hosts.toml"])
	if !strings.Contains(h, `ca = "/etc/containerd/certs.d/registry.test:443/ca.crt"`) || !strings.Contains(h, `server = "https://registry.test:443"`) {
		t.Errorf("hosts.toml:\n%s", h)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); !c.InSync || c.Detail != "" {
		t.Errorf("concern %+v: want in sync", c)
	}
}

func TestTrustRemovesOnlyItsOwnOldDirectories(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) { s.Registry.Address = "old.test:5000" })
	publishBundle(e.store, "CA1")
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	n := e.node(nodeA)
	// An administrator's directory, and a directory the operator created
	// in which someone else put a file.
	n.dirs["/etc/docker/certs.d/other.test:5000"] = true
	n.files["/etc/docker/certs.d/other.test:5000/ca.crt"] = []byte("theirs")
	e.spec.Registry.Address = "shared.test:5000"
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if n.dirs["/etc/docker/certs.d/old.test:5000"] {
		t.Error("old directory the operator created is still there")
	}
	n.files["/etc/docker/certs.d/shared.test:5000/client.cert"] = []byte("theirs")

	e.spec.Registry.Address = "new.test:5000"
	e.spec.Reconcile.Mode = v1alpha1.ModeReport
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Trust)
	if !slices.Contains(c.Changes, "remove /etc/docker/certs.d/shared.test:5000 (created by registry-operator for a previous registry address)") ||
		n.files["/etc/docker/certs.d/shared.test:5000/ca.crt"] == nil {
		t.Fatalf("report mode: %q", c.Changes)
	}
	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if n.files["/etc/docker/certs.d/shared.test:5000/ca.crt"] != nil {
		t.Error("the operator's ca.crt in the old directory is still there")
	}
	if string(n.files["/etc/docker/certs.d/other.test:5000/ca.crt"]) != "theirs" {
		t.Error("an administrator's directory was touched")
	}
	if string(n.files["/etc/docker/certs.d/shared.test:5000/client.cert"]) != "theirs" || !n.dirs["/etc/docker/certs.d/shared.test:5000"] {
		t.Error("a foreign file in an old directory was removed")
	}
	if c := e.concern(t, nodeA, reconciler.Trust); !strings.Contains(c.Detail, "kept /etc/docker/certs.d/shared.test:5000") {
		t.Errorf("detail = %q", c.Detail)
	}
}

func TestTrustRejectsPathLikeAddress(t *testing.T) {
	for _, a := range []string{"../etc", "a/b:5000", "..", "x y"} {
		if _, err := v1alpha1.RegistryDirNames(a); err == nil {
			t.Errorf("%q accepted as a certs.d name", a)
		}
	}
	e := newNodeEnv(t, func(s *v1alpha1.Spec) { s.Registry.Address = "../../etc/passwd" })
	publishBundle(e.store, "CA1")
	_, err := NewTrust(e.deps, e.opts).Reconcile(context.Background(), nodeA)
	if !manager.IsTerminal(err) {
		t.Fatalf("got %v, want a terminal error", err)
	}
}

func TestUnreachableAndHostKey(t *testing.T) {
	e := newNodeEnv(t, nil)
	publishBundle(e.store, "CA1")
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	e.exec.down[nodeB] = &nodes.ConnectError{Node: nodeB, Err: errors.New("connection refused")}
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	_, err := r.Reconcile(ctx, nodeB)
	if err == nil || manager.IsTerminal(err) {
		t.Fatalf("unreachable node: got %v, want a retryable error", err)
	}
	if n, _ := e.store.Node(nodeB); n.Reachable || n.LastError == "" {
		t.Errorf("node B = %+v", n)
	}
	if v := testutil.ToFloat64(e.metrics.Nodes.WithLabelValues(metrics.NodeUnreachable)); v != 1 {
		t.Errorf("unreachable gauge = %v", v)
	}
	e.exec.down[nodeB] = &nodes.HostKeyError{Node: nodeB, Mismatch: true}
	if _, err := r.Reconcile(ctx, nodeB); !manager.IsTerminal(err) {
		t.Fatalf("host key mismatch: got %v, want terminal", err)
	}
}

func TestConntrack(t *testing.T) {
	e := newNodeEnv(t, nil)
	r := NewConntrack(e.deps, e.opts)
	ctx := context.Background()
	n := e.node(nodeA)

	// Module not loaded: persisted, and said so.
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Conntrack)
	if !strings.Contains(c.Detail, "does not exist") {
		t.Errorf("detail = %q", c.Detail)
	}
	if !strings.Contains(string(n.files[v1alpha1.DefaultPersistFile]), BeLiberalKey+" = 1\n") ||
		!strings.Contains(string(n.files[v1alpha1.DefaultModulesLoadFile]), "\nnf_conntrack\n") {
		t.Fatalf("persistence: %q / %q", n.files[v1alpha1.DefaultPersistFile], n.files[v1alpha1.DefaultModulesLoadFile])
	}

	n.files[BeLiberalPath] = []byte("0\n")
	e.spec.Reconcile.Mode = v1alpha1.ModeReport
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c = e.concern(t, nodeA, reconciler.Conntrack)
	if c.InSync || !slices.Contains(c.Changes, "sysctl "+BeLiberalKey+" 0 -> 1") || string(n.files[BeLiberalPath]) != "0\n" {
		t.Fatalf("report: %+v", c)
	}
	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if string(n.files[BeLiberalPath]) != "1\n" || !e.concern(t, nodeA, reconciler.Conntrack).InSync {
		t.Fatalf("live value %q", n.files[BeLiberalPath])
	}
	// The value reported above was drift from a node in sync; enforce
	// repaired it (1). A reboot resets the live value: repaired and counted (2).
	n.files[BeLiberalPath] = []byte("0\n")
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(e.metrics.DriftCorrections.WithLabelValues(reconciler.Conntrack)); v != 2 || string(n.files[BeLiberalPath]) != "1\n" {
		t.Errorf("drift corrections = %v, value %q", v, n.files[BeLiberalPath])
	}

	// A read-only file system is an error on a reachable node.
	n.ro = true
	n.files[BeLiberalPath] = []byte("0\n")
	delete(n.files, v1alpha1.DefaultPersistFile)
	if _, err := r.Reconcile(ctx, nodeA); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("got %v", err)
	}
	if nn, _ := e.store.Node(nodeA); !nn.Reachable || e.concern(t, nodeA, reconciler.Conntrack).InSync {
		t.Errorf("node %+v", nn)
	}
}

func TestPlacement(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.App.Constraints = [][]string{{"hostname", "LIKE", `198\.18\.0\.1[12]`}, {"hostname", "UNLIKE", ".*12"}}
	})
	publishBundle(e.store, "CA1")
	r := NewPlacement(e.deps, e.opts)
	ctx := context.Background()
	for _, n := range []string{nodeA, nodeB} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	a, b := e.node(nodeA), e.node(nodeB)
	dir := v1alpha1.DefaultCertsHostPath
	if string(a.files[dir+"/tls.key"]) != "key-CA1" || a.modes[dir+"/tls.key"] != 0o600 || string(a.files[dir+"/tls.crt"]) != "chain-CA1" {
		t.Fatalf("node A files: %v", a.files)
	}
	if _, ok := b.files[dir+"/tls.key"]; ok {
		t.Fatal("the key went to an agent the constraints exclude")
	}
	pk := e.store.PKI()
	if all, missing := e.store.NodesCarry(reconciler.Placement, pk.ServerHash); !all {
		t.Errorf("NodesCarry: missing %v", missing)
	}
	// A chmod by hand is repaired.
	a.modes[dir+"/tls.key"] = 0o644
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if a.modes[dir+"/tls.key"] != 0o600 {
		t.Error("key mode not repaired")
	}
	// A changes constraints: the key leaves node A.
	e.spec.App.Constraints = [][]string{{"hostname", "CLUSTER", nodeB}}
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.files[dir+"/tls.key"]; ok {
		t.Error("key left on an agent that is no longer a candidate")
	}
}

func TestMatchHostConstraints(t *testing.T) {
	for _, tc := range []struct {
		cs   [][]string
		want bool
	}{
		{nil, true},
		{[][]string{{"hostname", "LIKE", "agent-[0-9]+"}}, true},
		{[][]string{{"hostname", "LIKE", "agent"}}, false}, // whole-value match
		{[][]string{{"hostname", "LIKE", `10\.0\.0\.5`}}, true},
		{[][]string{{"hostname", "UNLIKE", "agent-1"}}, false},
		{[][]string{{"hostname", "CLUSTER", "agent-1"}}, true},
		{[][]string{{"hostname", "CLUSTER", "agent-2"}}, false},
		{[][]string{{"hostname", "CLUSTER"}}, true},
		{[][]string{{"hostname", "UNIQUE"}}, true},
		{[][]string{{"rack", "LIKE", "r9"}}, true},
	} {
		got, err := matchHostConstraints(tc.cs, "agent-1", "10.0.0.5")
		if err != nil || got != tc.want {
			t.Errorf("%v: got %v %v, want %v", tc.cs, got, err, tc.want)
		}
	}
	if _, err := matchHostConstraints([][]string{{"hostname", "LIKE", "("}}, "a", "b"); err == nil {
		t.Error("bad regex accepted")
	}
}

type fakeLister struct {
	agents []nodes.Agent
	err    error
}

func (f *fakeLister) Mesos(context.Context, string) ([]nodes.Agent, error) { return f.agents, f.err }

type forgetter []string

func (f *forgetter) Forget(n string) { *f = append(*f, n) }

func TestDiscovery(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Nodes.Mesos = &v1alpha1.MesosSpec{URL: "http://127.0.0.1:5050"}
		s.Nodes.Static = []string{"198.18.0.50:2222"}
	})
	e.store.SetFleet(nil)
	l := &fakeLister{agents: []nodes.Agent{
		{Address: nodeA, Hostname: "agent-a", Source: nodes.SourceMesos},
		{Address: nodeB, Hostname: "agent-b", Source: nodes.SourceMesos},
	}}
	var f forgetter
	var queued []string
	d := NewDiscovery(e.deps, DiscoveryOptions{Agents: l, Conns: &f, Enqueue: func(r, k string) { queued = append(queued, r+"/"+k) }})
	ctx := context.Background()
	if _, err := d.Reconcile(ctx, FleetKey); err != nil {
		t.Fatal(err)
	}
	if got := len(e.store.Nodes()); got != 3 {
		t.Fatalf("fleet has %d nodes, want 3", got)
	}
	for _, k := range []string{"trust/" + nodeA, "conntrack/" + nodeB, "trust/198.18.0.50:2222"} {
		if !slices.Contains(queued, k) {
			t.Errorf("%s not enqueued: %v", k, queued)
		}
	}
	e.metrics.SetOutOfSync(reconciler.Trust, nodeB, true)

	// The master fails: the fleet stays.
	l.err = errors.New("connection refused")
	if _, err := d.Reconcile(ctx, FleetKey); err == nil {
		t.Fatal("discovery error not reported")
	}
	if len(e.store.Nodes()) != 3 {
		t.Fatal("a failed discovery changed the fleet")
	}
	// Node B leaves: its series and connection go.
	l.err, l.agents = nil, l.agents[:1]
	if _, err := d.Reconcile(ctx, FleetKey); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.store.Node(nodeB); ok || !slices.Contains(f, nodeB) {
		t.Errorf("node B still known (forgotten: %v)", f)
	}
	if n := testutil.CollectAndCount(e.metrics.OutOfSync); n != 0 {
		t.Errorf("%d out_of_sync series left after node B left", n)
	}
}
