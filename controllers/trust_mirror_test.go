package controllers

import (
	"context"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// Every agent trusts the CA under the mirror's address too, and the
// mirror's directory goes when the mirror does.
func TestTrustCoversTheMirror(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Registry.Address = "registry.test:5000"
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeContainerd}
		s.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001"}
	})
	publishBundle(e.store, "CA1")
	r := NewTrust(e.deps, e.opts)
	if _, err := r.Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	n := e.node(nodeA)
	for _, p := range []string{
		"/etc/docker/certs.d/registry.test:5000/ca.crt", "/etc/docker/certs.d/mirror.test:5001/ca.crt",
		"/etc/containerd/certs.d/mirror.test:5001/ca.crt",
	} {
		if string(n.files[p]) != "CA1" {
			t.Errorf("%s = %q", p, n.files[p])
		}
	}
	off := false
	e.spec.Mirror.Enabled = &off
	if _, err := r.Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	if n.dirs["/etc/docker/certs.d/mirror.test:5001"] || n.files["/etc/docker/certs.d/mirror.test:5001/ca.crt"] != nil {
		t.Error("the disabled mirror's certs.d directory is still there")
	}
	if string(n.files["/etc/docker/certs.d/registry.test:5000/ca.crt"]) != "CA1" {
		t.Error("the registry's trust must stay")
	}
}

// dockerRegistryMirrors: https://<mirror address> joins registry-mirrors in
// daemon.json beside anyone else's entry, dockerd restarts once to read it
// (the registry's agent last), and the entry leaves with the mirror.
func TestTrustDockerRegistryMirrors(t *testing.T) {
	e := insecureEnv(t, true)
	leaveInsecure(e)
	e.spec.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001"}
	v1alpha1.Default(&v1alpha1.Registry{Spec: *e.spec})
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	a, b := e.node(nodeA), e.node(nodeB)
	b.files[DockerDaemonJSON] = []byte(`{"registry-mirrors": ["https://m.example"], "log-driver": "journald"}`)
	for _, n := range []string{nodeA, nodeB, nodeA} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	want := "{\n  \"registry-mirrors\": [\n    \"https://m.example\",\n    \"https://mirror.test:5001\"\n  ],\n  \"log-driver\": \"journald\"\n}\n"
	if got := string(b.files[DockerDaemonJSON]); got != want {
		t.Errorf("daemon.json on B:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(string(a.files[DockerDaemonJSON]), `"https://mirror.test:5001"`) {
		t.Errorf("daemon.json on A:\n%s", a.files[DockerDaemonJSON])
	}
	if len(a.runs) != 1 || len(b.runs) != 1 {
		t.Fatalf("want one dockerd restart per agent, got A %d B %d", len(a.runs), len(b.runs))
	}
	for _, n := range []string{nodeA, nodeB} {
		if c := e.concern(t, n, reconciler.Trust); !c.InSync {
			t.Errorf("%s: %+v", n, c)
		}
	}
	// Steady: nothing written, nothing restarted.
	writes := b.writes
	if _, err := r.Reconcile(ctx, nodeB); err != nil || b.writes != writes || len(b.runs) != 1 {
		t.Fatalf("steady pass: %v, %d writes, %d runs", err, b.writes-writes, len(b.runs))
	}

	off := false
	e.spec.Mirror.DockerRegistryMirrors = &off
	for _, n := range []string{nodeB, nodeA} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	want = "{\n  \"registry-mirrors\": [\n    \"https://m.example\"\n  ],\n  \"log-driver\": \"journald\"\n}\n"
	if got := string(b.files[DockerDaemonJSON]); got != want {
		t.Errorf("daemon.json on B after the mirror left:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := b.files[mirrorsOwnedFile]; ok {
		t.Error("the record of owned entries is left behind")
	}
}

// Without trust.allowDockerRestart the entry is written and the restart
// it needs is reported, not done.
func TestTrustDockerRegistryMirrorsWithoutRestart(t *testing.T) {
	e := insecureEnv(t, false)
	leaveInsecure(e)
	e.spec.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001"}
	v1alpha1.Default(&v1alpha1.Registry{Spec: *e.spec})
	if _, err := NewTrust(e.deps, e.opts).Reconcile(context.Background(), nodeB); err != nil {
		t.Fatal(err)
	}
	b := e.node(nodeB)
	c := e.concern(t, nodeB, reconciler.Trust)
	if len(b.runs) != 0 || c.InSync || !strings.Contains(c.Detail, "trust.allowDockerRestart is false") ||
		!strings.Contains(string(b.files[DockerDaemonJSON]), "https://mirror.test:5001") {
		t.Fatalf("runs %d, %+v\n%s", len(b.runs), c, b.files[DockerDaemonJSON])
	}
}
