package controllers

import (
	"context"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// TestFleetTrustEveryRuntime: one agent converges for docker, containers,
// containerd, UCR and the system store over real OpenSSH; OpenSSL and curl
// on the agent then trust a real docker-registry through the UCR directory
// (which holds DC/OS's CA, with a colliding subject-hash link) and through
// the system store; DC/OS's entries survive every pass, CA rotation included.
func TestFleetTrustEveryRuntime(t *testing.T) {
	for _, bin := range []string{"docker-registry", "openssl", "curl", "update-ca-certificates"} {
		if _, err := exec.LookPath(bin); err != nil && os.Geteuid() == 0 {
			t.Fatalf("%s not installed (Debian packages docker-registry, openssl, curl, ca-certificates): %v", bin, err)
		}
	}
	opts := testfleet.Options{N: 2, Seed: []string{"/etc/containers", "/etc/ssl/certs"}}
	e := newFleetEnvOpts(t, opts, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Conntrack, s.App = nil, nil
		s.Trust.Runtimes = []string{v1alpha1.RuntimeDocker, v1alpha1.RuntimeUCR, v1alpha1.RuntimeContainers, v1alpha1.RuntimeContainerd}
		s.Trust.SystemStore = true
		// update-ca-certificates rebuilds ~300 links with one process each.
		s.Nodes.SSH.CommandTimeout = v1alpha1.D(2 * time.Minute)
	})
	ctx := context.Background()
	reg, agent := e.f.Host(0), e.f.Host(1)
	p := newFleetPKI(t, reg.Address)
	e.store.SetPKI(p.pki)
	addr := startFleetRegistry(t, reg, p, t.TempDir())
	url := "https://" + addr + "/v2/"
	dir := v1alpha1.DefaultUCRCertsDir

	// DC/OS's root CA, with the same subject as ours, so its rehash link
	// takes <hash>.0 and ours must take .1.
	dcos := newFleetPKI(t, reg.Address)
	hash := mustSplit(t, p.caPEM)[0].hash
	must(t, agent.WriteFile(ctx, dir+"/dcos-ca.crt", dcos.caPEM, 0o644))
	foreign := map[string]string{hash + ".0": "dcos-ca.crt", "0123abcd.0": "dcos-ca.crt"}
	for l, tg := range foreign {
		if _, err := agent.Exec(ctx, "ln", "-s", tg, dir+"/"+l); err != nil {
			t.Fatal(err)
		}
	}
	checkForeign := func(stage string) {
		t.Helper()
		for l, tg := range foreign {
			if got, err := os.Readlink("/proc/" + strconv.Itoa(agent.HolderPID()) + "/root" + dir + "/" + l); err != nil || got != tg {
				t.Errorf("%s: foreign link %s -> %q (%v), want %q", stage, l, got, err, tg)
			}
		}
		if got := e.read(t, agent, dir+"/dcos-ca.crt"); got != string(dcos.caPEM) {
			t.Errorf("%s: foreign dcos-ca.crt changed: %q", stage, got)
		}
	}
	curl := func(args ...string) error {
		_, err := agent.Exec(ctx, "curl", append([]string{"-sS", "-o", "/dev/null", "--max-time", "20"}, args...)...)
		return err
	}
	if err := curl("--capath", dir, url); err == nil {
		t.Fatal("curl trusted the registry before the trust pass: the test could not fail")
	}

	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("trust pass: %v", errs)
	}
	checkForeign("first pass")
	for _, f := range []string{
		"/etc/docker/certs.d/" + addr + "/ca.crt", "/etc/containers/certs.d/" + addr + "/ca.crt",
		"/etc/containerd/certs.d/" + addr + "/ca.crt",
	} {
		if got := e.read(t, agent, f); got != string(p.caPEM) {
			t.Errorf("%s = %q", f, got)
		}
	}
	if got := e.read(t, agent, "/etc/containerd/certs.d/"+addr+"/hosts.toml"); !strings.Contains(got, `ca = "/etc/containerd/certs.d/`+addr+`/ca.crt"`) {
		t.Errorf("hosts.toml:\n%s", got)
	}
	must(t, agent.WriteFile(ctx, "/data/server.crt", p.certPEM, 0o644))
	if out, err := agent.Exec(ctx, "openssl", "verify", "-CApath", dir, "/data/server.crt"); err != nil {
		t.Errorf("openssl verify -CApath %s: %v %s", dir, err, out)
	}
	if err := curl("--capath", dir, url); err != nil {
		t.Errorf("curl --capath %s: %v", dir, err)
	}
	// The system store: curl's default CA bundle now holds the CA.
	if err := curl(url); err != nil {
		t.Errorf("curl with the system store: %v", err)
	}

	// Steady state: no process starts on any node.
	sessions := counter(e.metrics.SSHSessions)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("steady pass: %v", errs)
	}
	if d := counter(e.metrics.SSHSessions) - sessions; d != 0 {
		t.Errorf("steady-state pass opened %v SSH sessions, want 0", d)
	}
	for _, n := range e.store.Nodes() {
		if c := n.Concerns["trust"]; !c.InSync || len(c.Changes) > 0 {
			t.Errorf("%s after a steady pass: %+v", n.Address, c)
		}
	}
	checkForeign("steady pass")

	// Rotation: old and new CA (same subject) side by side, then the new alone.
	p2 := newFleetPKI(t, reg.Address)
	both := append(append([]byte{}, p.caPEM...), p2.caPEM...)
	rot := p2.pki
	rot.Bundle, rot.BundleHash = both, state.Hash(both)
	e.store.SetPKI(rot)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("rotation pass: %v", errs)
	}
	checkForeign("rotation")
	if out, err := agent.Exec(ctx, "openssl", "verify", "-CApath", dir, "/data/server.crt"); err != nil {
		t.Errorf("during rotation the old CA's server certificate no longer verifies: %v %s", err, out)
	}
	e.store.SetPKI(p2.pki)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("post-rotation pass: %v", errs)
	}
	checkForeign("after rotation")
	if _, err := agent.Exec(ctx, "openssl", "verify", "-CApath", dir, "/data/server.crt"); err == nil {
		t.Error("the retired CA still verifies through the UCR directory")
	}
	if err := curl(url); err == nil {
		t.Error("the retired CA is still in the system store")
	}
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(agent.HolderPID()) + "/root" + dir)
	must(t, err)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	ca2 := mustSplit(t, p2.caPEM)[0]
	for _, want := range []string{ca2.file, hash + ".1", ucrManifest} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("UCR directory %v lacks %s", names, want)
		}
	}
	if len(names) != 6 {
		t.Errorf("UCR directory holds %v, want DC/OS's 3 entries and the operator's 3", names)
	}
}

// TestFleetInsecureDaemonJSON: tls.mode insecure merges the registry into
// every agent's daemon.json over SFTP, keeping the other keys, and refuses
// to touch a file that does not parse.
func TestFleetInsecureDaemonJSON(t *testing.T) {
	e := newFleetEnv(t, 2, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Conntrack, s.App = nil, nil
		s.TLS.Mode = v1alpha1.TLSInsecure
	})
	ctx := context.Background()
	good, bad := e.f.Host(0), e.f.Host(1)
	must(t, good.WriteFile(ctx, DockerDaemonJSON, []byte(`{"log-driver":"journald","registry-mirrors":["https://m.example"],"insecure-registries":["10.0.0.0/8"]}`), 0o600))
	broken := "{\"log-driver\": \"journald\"\n"
	must(t, bad.WriteFile(ctx, DockerDaemonJSON, []byte(broken), 0o644))

	errs := e.pass(t)
	if err := errs["trust|"+bad.Address]; err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Errorf("broken daemon.json: %v", err)
	}
	if got := e.read(t, bad, DockerDaemonJSON); got != broken {
		t.Errorf("the broken daemon.json was rewritten: %q", got)
	}
	if err := errs["trust|"+good.Address]; err != nil {
		t.Fatalf("good node: %v", err)
	}
	got := e.read(t, good, DockerDaemonJSON)
	d, err := parseDaemonJSON([]byte(got))
	must(t, err)
	if strings.Join(d.keys, ",") != "log-driver,registry-mirrors,insecure-registries" ||
		!strings.Contains(got, `"https://m.example"`) || !strings.Contains(got, `"10.0.0.0/8",`) || !strings.Contains(got, `"`+e.spec.Registry.Address+`"`) {
		t.Errorf("merged daemon.json:\n%s", got)
	}
	if st, err := good.Stat(ctx, DockerDaemonJSON); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("daemon.json mode changed: %v %v", st, err)
	}
	if _, err := good.Stat(ctx, path.Join("/etc/docker/certs.d")); err == nil {
		t.Error("insecure mode wrote certs.d")
	}
	before := got
	if errs := e.pass(t); errs["trust|"+good.Address] != nil {
		t.Fatal(errs)
	}
	if e.read(t, good, DockerDaemonJSON) != before {
		t.Error("a second pass changed daemon.json again")
	}
}
