package sandbox

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

func renderTemplate(t *testing.T, edit func(string) string) *v1alpha1.Registry {
	t.Helper()
	path, err := TemplatePath()
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := Render([]byte(edit(string(tmpl))), map[string]string{
		"MARATHON_URL": "http://127.0.0.1:1234", "MESOS_URL": "http://127.0.0.1:1234",
		"SSH_PRIVATE_KEY": filepath.Join(dir, "id"), "SSH_KNOWN_HOSTS": filepath.Join(dir, "kh"),
		"REGISTRY_IP": "198.18.0.2", "REGISTRY_IP_RE": regexp.QuoteMeta("198.18.0.2"),
		"STATE_DIR": filepath.Join(dir, "state"), "INTERVAL": "5s", "CI_PASSWORD_FILE": filepath.Join(dir, "ci.password"),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := v1alpha1.Parse(out)
	if err != nil {
		t.Fatalf("rendered template is invalid: %v\n%s", err, out)
	}
	return r
}

// The template's commented auth block, uncommented, is what EnableAuth
// makes, and its paths stay on the agents.
func TestTemplateAuthBlock(t *testing.T) {
	r := renderTemplate(t, func(s string) string {
		i := strings.Index(s, "  # auth:\n")
		if i < 0 {
			t.Fatal("config/sandbox.yaml has no commented auth block")
		}
		return s[:i] + strings.ReplaceAll(s[i:], "  # ", "  ")
	})
	if !r.Spec.CredentialsEnabled() {
		t.Fatalf("the auth block does not enable pull credentials: %+v", r.Spec.Auth)
	}
	if err := checkAgentPaths(&r.Spec); err != nil {
		t.Fatal(err)
	}
	want := renderTemplate(t, func(s string) string { return s })
	EnableAuth(want, r.Spec.Auth.Htpasswd.Users[0].PasswordFile, 720*time.Hour)
	v1alpha1.Default(want)
	tgz, cfg, mesos := r.Spec.PullCredentials.Paths()
	wtgz, wcfg, wmesos := want.Spec.PullCredentials.Paths()
	if tgz != wtgz || cfg != wcfg || mesos != wmesos || r.Spec.Auth.Htpasswd.Users[0] != want.Spec.Auth.Htpasswd.Users[0] {
		t.Errorf("the template's auth block differs from EnableAuth: %+v %+v", r.Spec.PullCredentials, want.Spec.PullCredentials)
	}
}

// The spec's default /etc/docker.tar.gz is not private to a testfleet
// agent: the operator would write it into this machine's /etc.
func TestAgentPathsRefuseTheMachinesOwnFiles(t *testing.T) {
	r := renderTemplate(t, func(s string) string { return s })
	EnableAuth(r, "/run/ci.password", 0)
	if err := checkAgentPaths(&r.Spec); err != nil {
		t.Fatalf("EnableAuth's paths refused: %v", err)
	}
	r.Spec.PullCredentials = nil
	v1alpha1.Default(r)
	err := checkAgentPaths(&r.Spec)
	if err == nil || !strings.Contains(err.Error(), v1alpha1.DefaultDockerTarGz) {
		t.Fatalf("default pull credential paths: %v, want an error naming %s", err, v1alpha1.DefaultDockerTarGz)
	}
	for _, p := range []string{"/etc/dockerx/config.json", "/etc/docker/../passwd"} {
		if privatePath(p) {
			t.Errorf("%s counted as private to an agent", p)
		}
	}
}
