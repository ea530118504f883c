package controllers

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/dockerauth"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// fleetTarGz is docker.tar.gz on a testfleet host.
const fleetTarGz = "/etc/docker/docker.tar.gz"

// newCredentialsFleet is a fleet env with auth on and the credentials
// reconciler next to the others; the Mesos lister lists only the first
// listed hosts until a test adds more.
func newCredentialsFleet(t *testing.T, n, listed int) *fleetEnv {
	t.Helper()
	e := newFleetEnv(t, n, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Conntrack = nil
		s.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{}}
		// A file directly in /etc would be the machine's own: testfleet
		// gives each host its own /etc/docker, not its own /etc.
		s.PullCredentials = &v1alpha1.PullCredentialsSpec{DockerTarGz: ptrTo(fleetTarGz)}
	})
	if !e.spec.CredentialsEnabled() {
		t.Fatal("credentials not enabled by the test spec")
	}
	e.mesos.agents = e.mesos.agents[:listed]
	deps := Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.metrics,
		Clock: clock.RealClock{}, Log: testr.New(t)}
	e.recs[reconciler.Credentials] = NewCredentials(deps, NodeOptions{Exec: e.exec})
	e.store.SetPKI(newFleetPKI(t, e.f.Host(0).Address).pki)
	return e
}

// Real sshd agents: a new agent gets docker.tar.gz and config.json, 0600,
// in its first pass; a foreign entry in config.json survives; an
// unparsable config.json is left untouched; a steady pass writes nothing.
func TestFleetCredentials(t *testing.T) {
	e := newCredentialsFleet(t, 3, 2)
	ctx := context.Background()
	p := publishPull(e.store, 1)
	h0, h1, h2 := e.f.Host(0), e.f.Host(1), e.f.Host(2)
	foreign := []byte(`{"auths": {"other.example:443": {"auth": "b3RoZXI6c2VjcmV0"}}}` + "\n")
	must(t, h1.WriteFile(ctx, v1alpha1.DefaultDockerConfig, foreign, 0o644))
	host := e.spec.Registry.Address

	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("first pass: %v", errs)
	}
	carries := func(h *testfleet.Host, gen string) {
		t.Helper()
		for _, f := range []string{fleetTarGz, v1alpha1.DefaultDockerConfig} {
			st, err := h.Stat(ctx, f)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s: %v %v, want mode 0600", h.Name, f, st, err)
			}
		}
		b, err := h.ReadFile(ctx, fleetTarGz)
		must(t, err)
		inner, err := dockerauth.ReadTarGz(b)
		must(t, err)
		cfg, err := h.ReadFile(ctx, v1alpha1.DefaultDockerConfig)
		must(t, err)
		for what, c := range map[string][]byte{"docker.tar.gz": inner, "config.json": cfg} {
			if e, ok, err := dockerauth.Lookup(c, host); !ok || err != nil || e.Username != "agents-"+gen {
				t.Errorf("%s: %s: entry for %s: %v %v %q", h.Name, what, host, ok, err, e.Username)
			}
		}
		n, _ := e.store.Node(h.Address)
		if c := n.Concerns[reconciler.Credentials]; !c.InSync || c.Hash != gen {
			t.Errorf("%s: credentials concern %+v", h.Name, c)
		}
	}
	carries(h0, "1")
	carries(h1, "1")
	if st, err := h0.Stat(ctx, "/root/.docker"); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("/root/.docker on %s: %v %v, want 0700", h0.Name, st, err)
	}
	cfg, err := h1.ReadFile(ctx, v1alpha1.DefaultDockerConfig)
	must(t, err)
	if e, ok, _ := dockerauth.Lookup(cfg, "other.example:443"); !ok || e.Username != "other" {
		t.Errorf("the foreign entry did not survive: %q", cfg)
	}

	// Steady state: nothing written, no session opened.
	sessions := counter(e.metrics.SSHSessions)
	mtime := func(h *testfleet.Host) time.Time {
		st, err := h.Stat(ctx, fleetTarGz)
		must(t, err)
		return st.ModTime()
	}
	before := mtime(h0)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("steady pass: %v", errs)
	}
	n0, _ := e.store.Node(h0.Address)
	if c := n0.Concerns[reconciler.Credentials]; len(c.Changes) > 0 || !mtime(h0).Equal(before) {
		t.Errorf("steady pass changed %s: %q", h0.Name, c.Changes)
	}
	if d := counter(e.metrics.SSHSessions) - sessions; d != 0 {
		t.Errorf("steady pass opened %v SSH sessions", d)
	}

	// A new agent gets them in its first pass; a broken config.json is
	// left as it is and reported.
	e.mesos.agents = append(e.mesos.agents, nodes.Agent{Address: h2.Address, Hostname: h2.Name, Source: nodes.SourceMesos})
	broken := []byte(`{"auths": {`)
	must(t, h1.WriteFile(ctx, v1alpha1.DefaultDockerConfig, broken, 0o600))
	errs := e.pass(t)
	if len(errs) > 0 {
		t.Fatalf("pass with a new agent: %v", errs)
	}
	carries(h2, "1")
	if got, _ := h1.ReadFile(ctx, v1alpha1.DefaultDockerConfig); string(got) != string(broken) {
		t.Errorf("the unparsable config.json was changed: %q", got)
	}
	n1, _ := e.store.Node(h1.Address)
	if c := n1.Concerns[reconciler.Credentials]; c.InSync || c.Hash != "" || c.Detail == "" {
		t.Errorf("%s with a broken config.json: %+v", h1.Name, c)
	}
	if !slices.Contains(p.Valid, p.Current) {
		t.Fatal("publishPull does not list the current user as valid")
	}
}
