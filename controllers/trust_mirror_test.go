package controllers

import (
	"context"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
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
