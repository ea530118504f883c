package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// A report-mode pass of every node reconciler, on a node that needs files
// written, a sysctl set, a stale directory removed and the system store
// rebuilt, changes nothing and starts no process, yet lists every change.
func TestReportModePassWritesNothing(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeUCR}
		s.Trust.SystemStore = true
		s.Reconcile.Mode = v1alpha1.ModeReport
	})
	p := newFleetPKI(t, "198.18.0.10")
	publishBundle(e.store, string(p.caPEM))
	n := e.node(nodeA)
	n.files["/usr/sbin/update-ca-certificates"] = []byte("#!/bin/sh\n")
	n.files[BeLiberalPath] = []byte("0\n")
	n.dirs["/etc/docker/certs.d"], n.dirs["/etc/docker/certs.d/old.test:5000"] = true, true
	n.files["/etc/docker/certs.d/old.test:5000/"+ownerMarker] = []byte("ours")
	n.run = func(script string, _ []string) ([]byte, error) { return nil, nil }
	before := len(n.files) + len(n.dirs) + len(n.links)

	ctx := context.Background()
	if _, err := NewTrust(e.deps, e.opts).Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if _, err := NewConntrack(e.deps, e.opts).Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlacement(e.deps, e.opts).Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if n.writes != 0 || len(n.runs) != 0 || len(n.files)+len(n.dirs)+len(n.links) != before || string(n.files[BeLiberalPath]) != "0\n" {
		t.Fatalf("report mode changed the node: %d writes, runs %q", n.writes, n.runs)
	}
	for _, name := range []string{reconciler.Trust, reconciler.Conntrack, reconciler.Placement} {
		c := e.concern(t, nodeA, name)
		if c.InSync || len(c.Changes) == 0 || c.Error != "" || c.Hash != "" {
			t.Errorf("%s: %+v, want out of sync with changes listed and nothing carried", name, c)
		}
	}
	trust := e.concern(t, nodeA, reconciler.Trust).Changes
	for _, want := range []string{"remove /etc/docker/certs.d/old.test:5000", "link ", "run update-ca-certificates"} {
		if !slices.ContainsFunc(trust, func(c string) bool { return strings.HasPrefix(c, want) }) {
			t.Errorf("trust changes %q lack %q", trust, want)
		}
	}
	if c := e.concern(t, nodeA, reconciler.Conntrack).Changes; !slices.Contains(c, "sysctl "+BeLiberalKey+" 0 -> 1") {
		t.Errorf("conntrack changes %q", c)
	}
}

// The recording connection passes reads through and records, without
// applying, every operation that would change the node.
func TestRecordingConn(t *testing.T) {
	n := newFakeNode()
	n.files["/etc/a"], n.modes["/etc/a"] = []byte("A"), 0o644
	n.dirs["/etc"] = true
	n.run = func(string, []string) ([]byte, error) { return []byte("ran"), nil }
	rec := nodes.Recording(&fakeConn{n: n, name: nodeA})
	ctx := context.Background()
	if b, _, err := rec.ReadFile(ctx, "/etc/a"); err != nil || string(b) != "A" {
		t.Fatalf("read through: %q %v", b, err)
	}
	if len(rec.Recorded()) != 0 {
		t.Fatalf("a read was recorded: %q", rec.Recorded())
	}
	ops := []error{
		rec.WriteFile(ctx, "/etc/b", []byte("B"), 0o600),
		rec.Chmod(ctx, "/etc/a", 0o600),
		rec.Remove(ctx, "/etc/a"),
		rec.Symlink(ctx, "/etc/a", "/etc/l"),
	}
	for i, err := range ops {
		if err != nil {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if err := rec.WriteInPlace(ctx, "/etc/a", []byte("x")); !errors.Is(err, nodes.ErrNotApplied) {
		t.Errorf("WriteInPlace: %v, want ErrNotApplied", err)
	}
	if out, err := rec.Run(ctx, "PATH=/bin; export PATH\nexec reboot", "now"); !errors.Is(err, nodes.ErrNotApplied) || out != nil {
		t.Errorf("Run: %q %v, want ErrNotApplied", out, err)
	}
	if n.writes != 0 || len(n.runs) != 0 || string(n.files["/etc/a"]) != "A" || n.modes["/etc/a"] != 0o644 {
		t.Fatalf("the node changed: %d writes, runs %q", n.writes, n.runs)
	}
	want := []string{"write /etc/b (mode 600, 1 bytes)", "chmod /etc/a 600", "remove /etc/a", "symlink /etc/l -> /etc/a",
		"write in place /etc/a (1 bytes)", `run "exec reboot" with 1 argument(s)`}
	if got := rec.Recorded(); !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
}
