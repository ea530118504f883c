package controllers

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// The mirror's certificate, key and config go to its own agents (its
// constraints), in its own directory; the registry's stay on the registry's.
func TestPlacementMirrorTarget(t *testing.T) {
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.App.Constraints = [][]string{{"hostname", "LIKE", `198\.18\.0\.11`}}
		s.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001", RemoteUsernameFile: "/run/hub-user",
			RemotePasswordFile: "/run/hub-password", Constraints: [][]string{{"hostname", "LIKE", `198\.18\.0\.12`}}}
	})
	files := map[string]string{"/run/hub-user": "hubuser\n", "/run/hub-password": "hub-s3cret\n"}
	e.opts.ReadFile = func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	publishBundle(e.store, "CA1")
	r := NewPlacement(e.deps, e.opts)
	ctx := context.Background()
	for _, n := range []string{nodeA, nodeB} {
		if _, err := r.Reconcile(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	a, b := e.node(nodeA), e.node(nodeB)
	reg, mir := v1alpha1.DefaultCertsHostPath, v1alpha1.DefaultMirrorCertsHost
	if string(a.files[reg+"/tls.key"]) != "key-CA1" || a.files[mir+"/tls.key"] != nil {
		t.Errorf("node A (registry only): %v", keys(a.files))
	}
	if string(b.files[mir+"/tls.key"]) != "key-CA1" || string(b.files[mir+"/tls.crt"]) != "chain-CA1" || b.files[reg+"/tls.key"] != nil {
		t.Errorf("node B (mirror only): %v", keys(b.files))
	}
	cfg := string(b.files[mir+"/"+marathon.ConfigFile])
	if b.modes[mir+"/"+marathon.ConfigFile] != 0o600 || !strings.Contains(cfg, "remoteurl: https://registry-1.docker.io") ||
		!strings.Contains(cfg, "username: hubuser") || !strings.Contains(cfg, "password: hub-s3cret") {
		t.Errorf("mirror config.yml (mode %o):\n%s", b.modes[mir+"/"+marathon.ConfigFile], cfg)
	}
	if strings.Contains(string(a.files[reg+"/"+marathon.ConfigFile]), "proxy") {
		t.Error("the registry's config must not be a proxy")
	}
	m, _ := servedAppFor(e.spec, v1alpha1.DefaultMirrorID)
	want, err := m.render(e.spec, e.store, e.opts.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if missing := e.store.AppConfigPlacement(v1alpha1.DefaultMirrorID).Missing(want.Hash, nil); len(missing) > 0 {
		t.Errorf("mirror config placement missing on %v", missing)
	}
	if all, missing := e.store.NodesCarry(reconciler.Placement, e.store.PKI().ServerHash); !all {
		t.Errorf("certificate placement missing on %v", missing)
	}

	// An unreadable credentials file holds the mirror back, not the registry.
	delete(files, "/run/hub-password")
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatalf("the node pass must not fail for the mirror's config: %v", err)
	}
	if c := e.concern(t, nodeB, reconciler.Placement); !strings.Contains(c.Detail, "remotePasswordFile") {
		t.Errorf("detail = %q", c.Detail)
	}

	// The mirror turned off: its key leaves its agent.
	off := false
	e.spec.Mirror.Enabled = &off
	if _, err := r.Reconcile(ctx, nodeB); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.key", "tls.crt", marathon.ConfigFile} {
		if _, ok := b.files[mir+"/"+f]; ok {
			t.Errorf("%s left on the agent of a disabled mirror", f)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// An agent that stops being a candidate loses the config file (it holds
// the HTTP secret) with the key, not only the key.
func TestPlacementRemovesConfigWithKey(t *testing.T) {
	e := newNodeEnv(t, nil)
	publishBundle(e.store, "CA1")
	r := NewPlacement(e.deps, e.opts)
	if _, err := r.Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	a, cfg := e.node(nodeA), v1alpha1.DefaultCertsHostPath+"/"+marathon.ConfigFile
	if a.files[cfg] == nil {
		t.Fatal("config.yml not placed")
	}
	e.spec.App.Constraints = [][]string{{"hostname", "CLUSTER", nodeB}}
	if _, err := r.Reconcile(context.Background(), nodeA); err != nil {
		t.Fatal(err)
	}
	if a.files[cfg] != nil || a.files[v1alpha1.DefaultCertsHostPath+"/tls.key"] != nil {
		t.Errorf("left on a former candidate: %v", keys(a.files))
	}
}
