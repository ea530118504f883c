package dockerauth

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

// TestSkopeoWithRealRegistry: a CI user pushes to a private docker-registry;
// skopeo then pulls with nothing but the config.json unpacked from the
// docker.tar.gz this package built (merged into a file with other
// registries' entries), while anonymous pulls and a stale password fail.
func TestSkopeoWithRealRegistry(t *testing.T) {
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatalf("skopeo is not installed (Debian package skopeo): %v", err)
	}
	dir := t.TempDir()
	tlsFiles := registrytest.WriteTLS(t, dir)
	users, err := htpasswd.Keep(nil, map[string]secret.Value{"ci": "ci-password", "agents-1": "pull-password-1"}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "htpasswd"), users.File)
	addr := registrytest.FreeAddr(t)
	cfg, err := registryconfig.Render(registryconfig.Config{
		Storage:  registryconfig.Storage{RootDirectory: filepath.Join(dir, "data")},
		HTTP:     registryconfig.HTTP{Addr: addr, Secret: "http-secret", TLS: &registryconfig.TLS{Certificate: tlsFiles.Cert, Key: tlsFiles.Key}},
		Htpasswd: &registryconfig.Htpasswd{Realm: "registry", Path: filepath.Join(dir, "htpasswd")},
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "config.yml"), cfg)
	registrytest.Start(t, filepath.Join(dir, "config.yml"), addr)

	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.json")
	writeTestFile(t, policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`))
	skopeo := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "skopeo", append([]string{"--policy", policy}, args...)...)
		// Only the files named on the command line: no auth.json of the host.
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "XDG_RUNTIME_DIR=" + home}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	image := "docker://" + addr + "/test/hello:1"

	layout := filepath.Join(dir, "image")
	digest, err := sandbox.WriteOCIImage(layout, "latest", "pulled with distributed credentials\n")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--dest-cert-dir", tlsFiles.CADir, "--dest-no-creds",
		"oci:"+layout+":latest", image); err == nil || !strings.Contains(out, "unauthorized") {
		t.Fatalf("anonymous push: %v\n%s\nwant unauthorized", err, out)
	}
	if out, err := skopeo("copy", "--retry-times", "0", "--dest-cert-dir", tlsFiles.CADir, "--dest-creds", "ci:ci-password",
		"oci:"+layout+":latest", image); err != nil {
		t.Fatalf("push as ci: %v\n%s", err, out)
	}

	// What an agent already had, merged with the operator's entry, packed
	// and unpacked as the Mesos fetcher does.
	merged, err := Merge([]byte(foreign), map[string]Entry{addr: {Username: "agents-1", Password: "pull-password-1"}})
	if err != nil {
		t.Fatal(err)
	}
	authFile := unpack(t, dir, "sandbox", merged)
	inspect := func(auth ...string) (string, error) {
		return skopeo(append(append([]string{"inspect", "--retry-times", "0", "--cert-dir", tlsFiles.CADir}, auth...), image)...)
	}
	out, err := inspect("--authfile", authFile)
	if err != nil {
		t.Fatalf("inspect with the distributed config.json: %v\n%s", err, out)
	}
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Digest != digest {
		t.Errorf("inspect digest %q (%v), want %s", info.Digest, err, digest)
	}
	if out, err := inspect("--no-creds"); err == nil || !strings.Contains(out, "unauthorized") {
		t.Errorf("anonymous inspect: %v\n%s\nwant unauthorized", err, out)
	}
	stale, err := Merge(merged, map[string]Entry{addr: {Username: "agents-1", Password: "an-old-password"}})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inspect("--authfile", unpack(t, dir, "stale", stale)); err == nil || !strings.Contains(out, "unauthorized") {
		t.Errorf("inspect with a wrong password: %v\n%s\nwant unauthorized", err, out)
	}
}

// unpack writes TarGz(configJSON) and extracts it with tar into dir/name,
// returning the config.json path.
func unpack(t *testing.T, dir, name string, configJSON []byte) string {
	t.Helper()
	a, err := TarGz(configJSON)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, name+".tar.gz")
	writeTestFile(t, archive, a)
	dest := filepath.Join(dir, name)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-C", dest, "-xzf", archive).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	return filepath.Join(dest, ArchiveConfigPath)
}

func writeTestFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
