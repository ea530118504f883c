package controllers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/secret"
)

// TestFleetCredentialsPull: a real docker-registry with htpasswd auth on
// one agent; skopeo on another agent is refused anonymously, and pulls
// with nothing but the config.json, or the docker.tar.gz, the credentials
// reconciler put there.
func TestFleetCredentialsPull(t *testing.T) {
	for _, bin := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil && os.Geteuid() == 0 {
			t.Fatalf("%s not installed (Debian packages skopeo, docker-registry): %v", bin, err)
		}
	}
	e := newCredentialsFleet(t, 2, 2)
	reg, client := e.f.Host(0), e.f.Host(1)
	p := newFleetPKI(t, reg.Address)
	e.store.SetPKI(p.pki)
	pull := publishPull(e.store, 1)

	dir := t.TempDir()
	const ciPassword = secret.Value("ci-password-for-the-pull-test")
	users := map[string]string{}
	for name, pw := range map[string]secret.Value{pull.Current.Name: pull.Current.Password, "ci": ciPassword} {
		h, err := htpasswd.Hash(pw, bcrypt.MinCost)
		must(t, err)
		users[name] = h
	}
	file, err := htpasswd.Render(users)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "htpasswd"), file, 0o600))
	addr := startFleetRegistryWith(t, reg, p, dir,
		"auth:\n  htpasswd:\n    realm: registry\n    path: "+filepath.Join(dir, "htpasswd")+"\n")

	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("trust and credentials pass: %v", errs)
	}

	layout := filepath.Join(dir, "image")
	writeOCILayout(t, layout)
	policy := filepath.Join(dir, "policy.json")
	must(t, os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644))
	image := "docker://" + addr + "/operator-test/hello:1"
	skopeo := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := client.Command(ctx, "skopeo", append([]string{"--policy", policy}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--dest-creds", "ci:"+ciPassword.Reveal(), "oci:"+layout+":latest", image); err != nil {
		t.Fatalf("push as ci: %v\n%s", err, out)
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--src-no-creds", image, "oci:"+filepath.Join(dir, "anon")+":latest"); err == nil ||
		!strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("anonymous pull: err %v, output:\n%s\nwant unauthorized", err, out)
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--src-authfile", "/root/.docker/config.json",
		image, "oci:"+filepath.Join(dir, "pulled")+":latest"); err != nil {
		t.Fatalf("pull with the distributed config.json: %v\n%s", err, out)
	}

	// docker.tar.gz unpacked as Mesos does into a sandbox.
	sandbox := filepath.Join(dir, "sandbox")
	must(t, os.MkdirAll(sandbox, 0o700))
	if out, err := client.Command(context.Background(), "tar", "-xzf", fleetTarGz, "-C", sandbox).CombinedOutput(); err != nil {
		t.Fatalf("unpack docker.tar.gz: %v\n%s", err, out)
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--src-authfile", filepath.Join(sandbox, ".docker", "config.json"),
		image, "oci:"+filepath.Join(dir, "pulled-tgz")+":latest"); err != nil {
		t.Fatalf("pull with the config.json from docker.tar.gz: %v\n%s", err, out)
	}
}
