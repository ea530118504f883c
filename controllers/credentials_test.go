package controllers

import (
	"slices"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/dockerauth"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/state"
)

const mesosDockerConfig = "/etc/mesos-slave/docker.json"

// publishPull publishes generation gen of the pull user as the pullsecret
// reconciler would, with gen-1 still valid when gen > 1.
func publishPull(st *state.Store, gen int) state.PullSecret {
	u := func(g int) state.PullUser {
		return state.PullUser{Name: "agents-" + string(rune('0'+g)), Generation: g,
			Password: secret.Value(strings.Repeat(string(rune('a'+g)), 43))}
	}
	p := state.PullSecret{Ready: true, Current: u(gen), Valid: []state.PullUser{u(gen)}}
	if gen > 1 {
		p.Valid = append(p.Valid, u(gen-1))
	}
	st.SetPullSecret(p)
	return p
}

// wantHosts are the auths keys for newAuthEnv's registry.
var wantHosts = []string{"registry.test:5000", "registry.example:5000", "198.18.0.10:5000"}

func checkEntries(t *testing.T, what string, config []byte, u state.PullUser) {
	t.Helper()
	for _, h := range wantHosts {
		e, ok, err := dockerauth.Lookup(config, h)
		if err != nil || !ok || e.Username != u.Name || e.Password != u.Password {
			t.Errorf("%s: entry for %s: ok %v err %v user %q", what, h, ok, err, e.Username)
		}
	}
}

// Every form on a fresh agent, 0600, in one pass; a second pass writes
// nothing; a rotation rewrites each form; foreign entries survive.
func TestCredentialsForms(t *testing.T) {
	e := newAuthEnv(t, func(s *v1alpha1.Spec) {
		s.PullCredentials = &v1alpha1.PullCredentialsSpec{MesosDockerConfig: ptrTo(mesosDockerConfig)}
	})
	p := publishPull(e.store, 1)
	n := e.node(nodeA)
	foreign := `{"auths": {"other.example:443": {"auth": "b3RoZXI6c2VjcmV0"}}, "credHelpers": {"gcr.io": "gcloud"}}`
	n.files["/etc/mesos-slave/docker.json"], n.modes["/etc/mesos-slave/docker.json"] = []byte(foreign), 0o644
	n.dirs["/etc/mesos-slave"] = true

	e.reconcileCreds(t, nodeA)
	c := e.concern(t, nodeA, reconciler.Credentials)
	if !c.InSync || c.Hash != "1" || c.Error != "" {
		t.Fatalf("concern %+v", c)
	}
	for _, f := range []string{v1alpha1.DefaultDockerTarGz, v1alpha1.DefaultDockerConfig, mesosDockerConfig} {
		if n.modes[f] != 0o600 {
			t.Errorf("%s mode %o, want 600", f, n.modes[f])
		}
	}
	if n.modes["/root/.docker"] != 0o700 {
		t.Errorf("/root/.docker mode %o, want 700 (created for the credentials)", n.modes["/root/.docker"])
	}
	inner, err := dockerauth.ReadTarGz(n.files[v1alpha1.DefaultDockerTarGz])
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, "docker.tar.gz", inner, p.Current)
	checkEntries(t, "config.json", n.files[v1alpha1.DefaultDockerConfig], p.Current)
	mesos := n.files[mesosDockerConfig]
	checkEntries(t, "mesos docker config", mesos, p.Current)
	if e, ok, _ := dockerauth.Lookup(mesos, "other.example:443"); !ok || e.Username != "other" {
		t.Errorf("foreign entry lost: %q", mesos)
	}
	if !strings.Contains(string(mesos), `"gcr.io": "gcloud"`) {
		t.Errorf("foreign top-level key lost: %q", mesos)
	}
	for _, ch := range c.Changes {
		if strings.Contains(ch, p.Current.Password.Reveal()) {
			t.Fatalf("a change shows the password: %q", ch)
		}
	}

	writes := n.writes
	e.reconcileCreds(t, nodeA)
	if n.writes != writes || len(e.concern(t, nodeA, reconciler.Credentials).Changes) != 0 {
		t.Fatalf("second pass wrote %d times: %q", n.writes-writes, e.concern(t, nodeA, reconciler.Credentials).Changes)
	}

	// A rotation: each form moves to generation 2, foreign entries stay.
	p = publishPull(e.store, 2)
	e.reconcileCreds(t, nodeA)
	c = e.concern(t, nodeA, reconciler.Credentials)
	if !c.InSync || c.Hash != "2" || !slices.ContainsFunc(c.Changes, func(s string) bool { return strings.Contains(s, "generation 1 -> 2") }) {
		t.Fatalf("after rotation: %+v", c)
	}
	checkEntries(t, "config.json after rotation", n.files[v1alpha1.DefaultDockerConfig], p.Current)
	if _, ok, _ := dockerauth.Lookup(n.files[mesosDockerConfig], "other.example:443"); !ok {
		t.Error("foreign entry lost in the rotation")
	}

	// Drift: a hand-edited mode and content are repaired.
	n.modes[v1alpha1.DefaultDockerTarGz] = 0o644
	n.files[v1alpha1.DefaultDockerConfig] = []byte(`{"auths": {}}`)
	e.reconcileCreds(t, nodeA)
	if c := e.concern(t, nodeA, reconciler.Credentials); !c.InSync || len(c.Changes) != 2 {
		t.Fatalf("repair: %+v", c)
	}
	if n.modes[v1alpha1.DefaultDockerTarGz] != 0o600 {
		t.Error("mode not repaired")
	}
}

// A config.json that cannot be parsed is left byte for byte, reported on
// the node, and the agent counts as not carrying the credentials; the
// other forms still get them.
func TestCredentialsUnparsableConfig(t *testing.T) {
	e := newAuthEnv(t, nil)
	publishPull(e.store, 1)
	n := e.node(nodeA)
	broken := []byte(`{"auths": {"x": {"auth": "c2VjcmV0`)
	n.files[v1alpha1.DefaultDockerConfig], n.modes[v1alpha1.DefaultDockerConfig] = broken, 0o600
	n.dirs["/root/.docker"] = true
	e.reconcileCreds(t, nodeA)
	if string(n.files[v1alpha1.DefaultDockerConfig]) != string(broken) {
		t.Fatal("an unparsable config.json was overwritten")
	}
	c := e.concern(t, nodeA, reconciler.Credentials)
	if c.InSync || c.Hash != "" || !strings.Contains(c.Detail, v1alpha1.DefaultDockerConfig+" left untouched") ||
		!strings.Contains(c.Detail, "repair or remove it by hand") {
		t.Fatalf("concern %+v", c)
	}
	if strings.Contains(c.Detail, "c2VjcmV0") {
		t.Fatal("the detail quotes the file")
	}
	if _, ok := n.files[v1alpha1.DefaultDockerTarGz]; !ok {
		t.Error("docker.tar.gz not written next to the broken config.json")
	}
	if p := e.reconcilePull(t); !slices.Contains(p.Lagging, nodeA) {
		t.Errorf("the agent with the broken file is not lagging: %q", p.Lagging)
	}
}

// Report mode lists every change, writes nothing and carries nothing.
func TestCredentialsReportMode(t *testing.T) {
	e := newAuthEnv(t, func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	publishPull(e.store, 1)
	n := e.node(nodeA)
	e.reconcileCreds(t, nodeA)
	c := e.concern(t, nodeA, reconciler.Credentials)
	if n.writes != 0 || len(n.files) != 0 {
		t.Fatalf("report mode wrote: %d writes, files %v", n.writes, len(n.files))
	}
	want := []string{"create /etc/docker.tar.gz (pull credentials generation 1, mode 600)",
		"create /root/.docker/config.json (pull credentials generation 1, mode 600)",
		"chmod /root/.docker 700 (created for the credentials)"}
	if c.InSync || c.Hash != "" || !slices.Equal(c.Changes, want) {
		t.Fatalf("concern %+v\nwant changes %q", c, want)
	}
}

// Without a pull password there is nothing to distribute yet, and no
// agent is contacted.
func TestCredentialsWaitForPassword(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.reconcileCreds(t, nodeA)
	if _, ok := e.exec.nodes[nodeA]; ok {
		t.Fatal("an agent was contacted before there was a pull password")
	}
}

func TestCredentialHosts(t *testing.T) {
	got, err := credentialHosts(&v1alpha1.RegistryEndpoint{Address: "reg.test:443", DNSNames: []string{"reg.test", "*.wild.test", "alt.test"},
		IPAddresses: []string{"198.18.0.10", "2001:db8::1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"reg.test:443", "reg.test", "alt.test:443", "alt.test", "198.18.0.10:443", "198.18.0.10",
		"[2001:db8::1]:443", "[2001:db8::1]"}
	if !slices.Equal(got, want) {
		t.Errorf("hosts %q\nwant %q", got, want)
	}
}
