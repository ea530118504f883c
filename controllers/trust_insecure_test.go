package controllers

import (
	"context"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

func TestDaemonJSONMerge(t *testing.T) {
	in := `{
	"log-driver": "journald",
	"registry-mirrors": ["https://mirror.example"],
	"insecure-registries": ["10.0.0.0/8"],
	"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 65536}},
	"debug": false
}`
	d, err := parseDaemonJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	added, err := d.addInsecure([]string{"registry.test:5000"})
	if err != nil || len(added) != 1 {
		t.Fatalf("added %v, %v", added, err)
	}
	want := `{
  "log-driver": "journald",
  "registry-mirrors": [
    "https://mirror.example"
  ],
  "insecure-registries": [
    "10.0.0.0/8",
    "registry.test:5000"
  ],
  "default-ulimits": {
    "nofile": {
      "Name": "nofile",
      "Hard": 65536,
      "Soft": 65536
    }
  },
  "debug": false
}
`
	if got := string(d.bytes()); got != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	again, err := parseDaemonJSON(d.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if added, _ := again.addInsecure([]string{"registry.test:5000"}); len(added) != 0 {
		t.Errorf("second merge added %v", added)
	}

	for _, blank := range []string{"", " \n"} {
		d, err := parseDaemonJSON([]byte(blank))
		if err != nil {
			t.Fatalf("blank file: %v", err)
		}
		_, _ = d.addInsecure([]string{"r:5000"})
		if got := string(d.bytes()); got != "{\n  \"insecure-registries\": [\n    \"r:5000\"\n  ]\n}\n" {
			t.Errorf("from blank: %q", got)
		}
	}
	for _, bad := range []string{`{"a": 1,}`, `[1]`, `{"a": 1} {}`, `{"a": 1, "a": 2}`, `{"debug": tru`} {
		if _, err := parseDaemonJSON([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	d, _ = parseDaemonJSON([]byte(`{"insecure-registries": "r:5000"}`))
	if _, err := d.addInsecure([]string{"r:5000"}); err == nil {
		t.Error("a string insecure-registries was accepted")
	}
}

// insecureEnv is two agents in tls.mode insecure, the registry on nodeA,
// each with a running dockerd that a restart replaces.
func insecureEnv(t *testing.T, allow bool) *nodeEnv {
	t.Helper()
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.TLS.Mode = v1alpha1.TLSInsecure
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeUCR}
		s.Trust.AllowDockerRestart = allow
	})
	e.store.SetApp(state.App{ID: e.spec.App.ID, Exists: true, Hosts: []string{nodeA}})
	for _, a := range []string{nodeA, nodeB} {
		n := e.node(a)
		startDockerd := func(pid string) {
			n.files[dockerPIDFile] = []byte(pid + "\n")
			n.files["/proc/"+pid+"/stat"] = []byte(pid + " (dockerd) S 1 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 9 0 " + pid + "77 1 1")
		}
		startDockerd("100")
		n.files[bootIDFile] = []byte("boot-1\n")
		n.files[DockerDaemonJSON] = []byte(`{"log-driver": "journald"}`)
		n.run = func(script string, _ []string) ([]byte, error) {
			if script != scriptRestartDockerd {
				t.Errorf("unexpected script %q", script)
			}
			startDockerd("200")
			return nil, nil
		}
	}
	return e
}

func TestTrustInsecureRestartsRegistryAgentLast(t *testing.T) {
	e := insecureEnv(t, true)
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	a, b := e.node(nodeA), e.node(nodeB)

	res, err := r.Reconcile(ctx, nodeA)
	if err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Trust)
	if len(a.runs) != 0 || c.InSync || !strings.Contains(c.Detail, "other agents restart first") || res.RequeueAfter == 0 {
		t.Fatalf("registry agent first: runs %d, %+v, %+v", len(a.runs), c, res)
	}
	if !strings.Contains(string(a.files[DockerDaemonJSON]), `"registry.test:5000"`) || !strings.Contains(string(a.files[DockerDaemonJSON]), `"log-driver": "journald"`) {
		t.Errorf("daemon.json on A:\n%s", a.files[DockerDaemonJSON])
	}
	if !strings.Contains(c.Detail, "ucr need no CA") {
		t.Errorf("detail does not name the runtimes left alone: %q", c.Detail)
	}

	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	if c := e.concern(t, nodeB, reconciler.Trust); len(b.runs) != 1 || !c.InSync || !strings.Contains(strings.Join(c.Changes, "\n"), "restart dockerd") {
		t.Fatalf("agent B: runs %d, %+v", len(b.runs), c)
	}
	if _, ok := b.files[dockerRestartMarker]; ok {
		t.Error("restart marker left on B")
	}

	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); len(a.runs) != 1 || !c.InSync {
		t.Fatalf("registry agent after the others: runs %d, %+v", len(a.runs), c)
	}
	writes := a.writes
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if len(a.runs) != 1 || a.writes != writes {
		t.Errorf("steady pass ran %d scripts, wrote %d files", len(a.runs)-1, a.writes-writes)
	}
}

func TestTrustInsecureWithoutRestartReportsIt(t *testing.T) {
	e := insecureEnv(t, false)
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	b := e.node(nodeB)
	for range 2 {
		if _, err := r.Reconcile(ctx, nodeB); err != nil {
			t.Fatal(err)
		}
		c := e.concern(t, nodeB, reconciler.Trust)
		if len(b.runs) != 0 || c.InSync || !strings.Contains(c.Detail, "dockerd must be restarted") {
			t.Fatalf("%+v, runs %d", c, len(b.runs))
		}
	}
	// An administrator restarts dockerd: the node is in sync, the marker gone.
	b.files[dockerPIDFile] = []byte("300\n")
	b.files["/proc/300/stat"] = []byte("300 (dockerd) S 1 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 9 0 30077 1 1")
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	if c := e.concern(t, nodeB, reconciler.Trust); !c.InSync {
		t.Errorf("after a manual restart: %+v", c)
	}
	if _, ok := b.files[dockerRestartMarker]; ok {
		t.Error("marker left after the restart")
	}

	// A daemon.json that does not parse is never overwritten.
	broken := []byte("{\"log-driver\": \"journald\",\n")
	b.files[DockerDaemonJSON] = broken
	_, err := r.Reconcile(ctx, nodeB)
	if err == nil || !strings.Contains(err.Error(), "does not parse") || string(b.files[DockerDaemonJSON]) != string(broken) {
		t.Errorf("broken daemon.json: err %v, file now %q", err, b.files[DockerDaemonJSON])
	}
	if c := e.concern(t, nodeB, reconciler.Trust); c.InSync || !strings.Contains(c.Error, DockerDaemonJSON) {
		t.Errorf("broken daemon.json concern: %+v", c)
	}
}

func TestDaemonJSONRemoveInsecure(t *testing.T) {
	d, err := parseDaemonJSON([]byte(`{"debug": true, "insecure-registries": ["10.0.0.0/8", "registry.test:5000"], "log-driver": "journald"}`))
	if err != nil {
		t.Fatal(err)
	}
	removed, err := d.removeInsecure([]string{"registry.test:5000", "other:5000"})
	if err != nil || strings.Join(removed, ",") != "registry.test:5000" {
		t.Fatalf("removed %v, %v", removed, err)
	}
	want := "{\n  \"debug\": true,\n  \"insecure-registries\": [\n    \"10.0.0.0/8\"\n  ],\n  \"log-driver\": \"journald\"\n}\n"
	if got := string(d.bytes()); got != want {
		t.Errorf("after removal:\n%s\nwant:\n%s", got, want)
	}
	d, _ = parseDaemonJSON([]byte(`{"insecure-registries": "registry.test:5000"}`))
	if _, err := d.removeInsecure([]string{"registry.test:5000"}); err == nil {
		t.Error("a string insecure-registries was accepted")
	}
}

// leaveInsecure switches the env's spec from tls.mode insecure to a CA.
func leaveInsecure(e *nodeEnv) {
	e.spec.TLS.Mode = v1alpha1.TLSSelfSigned
	e.spec.Trust.Runtimes = []string{v1alpha1.RuntimeDocker} // the fake bundle is no PEM: no UCR
	publishBundle(e.store, "CA1")
}

// Leaving tls.mode insecure takes out of insecure-registries what the
// operator put there, and nothing else, and restarts dockerd by the same
// rules as entering it: the other agents first, the registry's agent last.
func TestTrustLeavingInsecureRemovesWhatItAdded(t *testing.T) {
	e := insecureEnv(t, true)
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	a, b := e.node(nodeA), e.node(nodeB)
	b.files[DockerDaemonJSON] = []byte(`{"insecure-registries": ["10.0.0.0/8"], "log-driver": "journald"}`)
	for _, n := range []string{nodeA, nodeB, nodeA} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.runs) != 1 || len(b.runs) != 1 || !strings.Contains(string(b.files[DockerDaemonJSON]), "registry.test:5000") {
		t.Fatalf("entering insecure: runs A %d B %d, B daemon.json %s", len(a.runs), len(b.runs), b.files[DockerDaemonJSON])
	}

	leaveInsecure(e)
	res, err := r.Reconcile(ctx, nodeA)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); len(a.runs) != 1 || c.InSync ||
		!strings.Contains(c.Detail, "other agents restart first") || res.RequeueAfter == 0 {
		t.Fatalf("registry agent first: runs %d, %+v, %+v", len(a.runs), c, res)
	}
	if strings.Contains(string(a.files[DockerDaemonJSON]), "registry.test") {
		t.Errorf("daemon.json on A still lists the registry:\n%s", a.files[DockerDaemonJSON])
	}
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeB, reconciler.Trust)
	if len(b.runs) != 2 || !c.InSync || !strings.Contains(strings.Join(c.Changes, "\n"), "remove registry.test:5000") {
		t.Fatalf("agent B: runs %d, %+v", len(b.runs), c)
	}
	want := "{\n  \"insecure-registries\": [\n    \"10.0.0.0/8\"\n  ],\n  \"log-driver\": \"journald\"\n}\n"
	if got := string(b.files[DockerDaemonJSON]); got != want {
		t.Errorf("daemon.json on B:\n%s\nwant only the registry gone:\n%s", got, want)
	}
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); len(a.runs) != 2 || !c.InSync {
		t.Fatalf("registry agent after the others: runs %d, %+v", len(a.runs), c)
	}
	for _, n := range []*fakeNode{a, b} {
		for _, f := range []string{insecureOwnedFile, dockerRestartMarker} {
			if _, ok := n.files[f]; ok {
				t.Errorf("%s left behind", f)
			}
		}
	}
	writes := a.writes
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if len(a.runs) != 2 || a.writes != writes {
		t.Errorf("steady pass ran %d scripts, wrote %d files", len(a.runs)-2, a.writes-writes)
	}
}

// An entry that was there before the operator (someone else's) stays when
// tls.mode insecure ends; without trust.allowDockerRestart the restart a
// removal needs is reported, not done; a daemon.json that does not parse is
// never touched.
func TestTrustLeavingInsecureKeepsOthersEntries(t *testing.T) {
	e := insecureEnv(t, false)
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	a, b := e.node(nodeA), e.node(nodeB)
	theirs := `{"insecure-registries": ["registry.test:5000"]}`
	a.files[DockerDaemonJSON] = []byte(theirs)
	for _, n := range []string{nodeA, nodeB} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	leaveInsecure(e)
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if got := string(a.files[DockerDaemonJSON]); got != theirs {
		t.Errorf("an entry the operator did not add was changed:\n%s", got)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); !c.InSync {
		t.Errorf("agent A: %+v", c)
	}
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeB, reconciler.Trust)
	if strings.Contains(string(b.files[DockerDaemonJSON]), "registry.test") || c.InSync ||
		!strings.Contains(c.Detail, "dockerd must be restarted") || len(b.runs) != 0 {
		t.Fatalf("agent B without allowDockerRestart: runs %d, %+v\n%s", len(b.runs), c, b.files[DockerDaemonJSON])
	}

	broken := []byte("{\"insecure-registries\": [\"registry.test:5000\"],\n")
	e.spec.TLS.Mode = v1alpha1.TLSInsecure
	b.files[DockerDaemonJSON] = []byte(`{}`)
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	b.files[DockerDaemonJSON] = broken
	leaveInsecure(e)
	_, err := r.Reconcile(ctx, nodeB)
	if err == nil || !strings.Contains(err.Error(), "does not parse") || string(b.files[DockerDaemonJSON]) != string(broken) {
		t.Errorf("broken daemon.json: err %v, file now %q", err, b.files[DockerDaemonJSON])
	}
}
