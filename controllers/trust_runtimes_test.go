package controllers

import (
	"context"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

func mustSplit(t *testing.T, bundle []byte) []trustCA {
	t.Helper()
	cas, err := splitBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return cas
}

func TestTrustUCRTouchesOnlyItsOwnEntries(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) { s.Trust.Runtimes = []string{v1alpha1.RuntimeUCR} })
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	dir := v1alpha1.DefaultUCRCertsDir
	// Two CAs with the same subject, as a rotation makes them: one hash.
	p1, p2 := newFleetPKI(t, "198.18.0.10"), newFleetPKI(t, "198.18.0.10")
	ca1, ca2 := mustSplit(t, p1.caPEM)[0], mustSplit(t, p2.caPEM)[0]
	if ca1.hash != ca2.hash || ca1.file == ca2.file {
		t.Fatalf("test CAs: hashes %s %s, files %s %s", ca1.hash, ca2.hash, ca1.file, ca2.file)
	}
	h := ca1.hash
	n := e.node(nodeA)
	for d := dir; d != "/"; d = path.Dir(d) {
		n.dirs[d] = true
	}
	// DC/OS's own CA, whose link happens to collide with ours.
	foreign := map[string]string{dir + "/" + h + ".0": "dcos-ca.crt", dir + "/9d66eef0.0": "dcos-ca.crt"}
	n.files[dir+"/dcos-ca.crt"], n.modes[dir+"/dcos-ca.crt"] = []byte("DC/OS root CA"), 0o644
	for l, tg := range foreign {
		n.links[l] = tg
	}
	checkForeign := func(stage string) {
		t.Helper()
		for l, tg := range foreign {
			if n.links[l] != tg {
				t.Errorf("%s: foreign link %s -> %q, want %q", stage, l, n.links[l], tg)
			}
		}
		if string(n.files[dir+"/dcos-ca.crt"]) != "DC/OS root CA" {
			t.Errorf("%s: foreign file changed", stage)
		}
	}
	pass := func(stage string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		checkForeign(stage)
	}

	// Report mode lists the file and the link, writes nothing.
	publishBundle(e.store, string(p1.caPEM))
	e.spec.Reconcile.Mode = v1alpha1.ModeReport
	pass("report")
	c := e.concern(t, nodeA, reconciler.Trust)
	wantLink := "link " + dir + "/" + h + ".1 -> " + ca1.file + " (subject hash)"
	if c.InSync || !slices.Contains(c.Changes, wantLink) || n.writes != 0 {
		t.Fatalf("report: %+v, %d writes; want %q and no writes", c, n.writes, wantLink)
	}

	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	pass("enforce")
	if string(n.files[dir+"/"+ca1.file]) != string(p1.caPEM) || n.links[dir+"/"+h+".1"] != ca1.file {
		t.Fatalf("after enforce: files %v links %v", n.files, n.links)
	}
	if m := string(n.files[dir+"/"+ucrManifest]); !strings.Contains(m, ca1.file+"\n") || !strings.Contains(m, h+".1\n") || strings.Contains(m, "dcos") {
		t.Errorf("manifest:\n%s", m)
	}
	if c := e.concern(t, nodeA, reconciler.Trust); !c.InSync {
		t.Errorf("concern after enforce: %+v", c)
	}
	writes := n.writes
	pass("steady")
	if n.writes != writes || len(e.concern(t, nodeA, reconciler.Trust).Changes) != 0 {
		t.Errorf("steady pass: %d writes, %+v", n.writes-writes, e.concern(t, nodeA, reconciler.Trust))
	}

	// Rotation: both CAs, the same subject hash, no gap in .N.
	publishBundle(e.store, string(p1.caPEM)+string(p2.caPEM))
	pass("rotation")
	if n.links[dir+"/"+h+".1"] != ca1.file || n.links[dir+"/"+h+".2"] != ca2.file {
		t.Fatalf("during rotation: links %v", n.links)
	}

	// The old CA leaves: its file goes, its link is re-pointed at the new
	// CA so .1 stays the first free index after DC/OS's .0.
	publishBundle(e.store, string(p2.caPEM))
	pass("after rotation")
	if _, ok := n.files[dir+"/"+ca1.file]; ok {
		t.Error("the old CA's file is still there")
	}
	if n.links[dir+"/"+h+".1"] != ca2.file {
		t.Errorf("links after rotation: %v", n.links)
	}
	if _, ok := n.links[dir+"/"+h+".2"]; ok {
		t.Errorf("stale link %s.2 left: %v", h, n.links)
	}
	if m := string(n.files[dir+"/"+ucrManifest]); strings.Contains(m, ca1.file) || strings.Contains(m, h+".2") {
		t.Errorf("manifest after rotation:\n%s", m)
	}

	// A link of ours someone re-pointed is theirs: never removed.
	n.links[dir+"/"+h+".1"] = "dcos-ca.crt"
	foreign[dir+"/"+h+".1"] = "dcos-ca.crt"
	pass("taken over")
	if n.links[dir+"/"+h+".2"] != ca2.file {
		t.Errorf("after a take-over: links %v", n.links)
	}
}

func TestTrustSystemStoreRunsUpdateOnlyOnChange(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker}
		s.Trust.SystemStore = true
	})
	p := newFleetPKI(t, "198.18.0.10")
	ca := mustSplit(t, p.caPEM)[0]
	publishBundle(e.store, string(p.caPEM))
	n := e.node(nodeA)
	n.files["/usr/sbin/update-ca-certificates"] = []byte("#!/bin/sh\n")
	bundle := "/etc/ssl/certs/ca-certificates.crt"
	n.run = func(script string, _ []string) ([]byte, error) {
		if !strings.Contains(script, "update-ca-certificates") {
			t.Errorf("unexpected script %q", script)
		}
		var all []byte
		for f, b := range n.files {
			if strings.HasPrefix(f, "/usr/local/share/ca-certificates/") {
				all = append(all, b...)
			}
		}
		n.files[bundle] = all
		return nil, nil
	}
	r := NewTrust(e.deps, e.opts)
	ctx := context.Background()
	for i := range 2 {
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
		if len(n.runs) != 1 {
			t.Fatalf("pass %d: %d runs, want 1 in all", i, len(n.runs))
		}
	}
	if string(n.files["/usr/local/share/ca-certificates/"+ca.file]) != string(p.caPEM) {
		t.Errorf("anchor file not written: %v", n.files)
	}
	// A rebuilt store that lost the CA (a failed run, say) is repaired.
	n.files[bundle] = []byte("other CAs only")
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	c := e.concern(t, nodeA, reconciler.Trust)
	if len(n.runs) != 2 || !slices.Contains(c.Changes, "run update-ca-certificates (Debian/Ubuntu system CA store)") {
		t.Errorf("runs %d, changes %q", len(n.runs), c.Changes)
	}
	// A CA leaving the bundle: its file goes and the links are rebuilt.
	p2 := newFleetPKI(t, "198.18.0.10")
	publishBundle(e.store, string(p2.caPEM))
	if _, err := r.Reconcile(ctx, nodeA); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.files["/usr/local/share/ca-certificates/"+ca.file]; ok || !strings.Contains(n.runs[len(n.runs)-1], "--fresh") {
		t.Errorf("old anchor kept or no --fresh rebuild: runs %q", n.runs)
	}

	// No tool at all: an error that says what to install.
	delete(n.files, "/usr/sbin/update-ca-certificates")
	if _, err := r.Reconcile(ctx, nodeA); err == nil || !strings.Contains(err.Error(), "ca-certificates") {
		t.Errorf("without update-ca-certificates: %v", err)
	}
}
