package htpasswd

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
)

// TestRealRegistryRereads: the real docker-registry accepts the files Keep
// writes and, with no restart, picks up each new file placed by an atomic
// rename: an added user works, a removed one and an old password get 401.
func TestRealRegistryRereads(t *testing.T) {
	dir := t.TempDir()
	tlsFiles := registrytest.WriteTLS(t, dir)
	path := filepath.Join(dir, "htpasswd")
	var current []byte
	place := func(users map[string]secret.Value) Result {
		t.Helper()
		r, err := Keep(current, users, testCost)
		if err != nil {
			t.Fatal(err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, r.File, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		current = r.File
		return r
	}
	place(map[string]secret.Value{"ci": "ci-password"})

	addr := registrytest.FreeAddr(t)
	cfg, err := registryconfig.Render(registryconfig.Config{
		Storage:  registryconfig.Storage{RootDirectory: filepath.Join(dir, "data")},
		HTTP:     registryconfig.HTTP{Addr: addr, Secret: "http-secret", TLS: &registryconfig.TLS{Certificate: tlsFiles.Cert, Key: tlsFiles.Key}},
		Htpasswd: &registryconfig.Htpasswd{Realm: "registry", Path: path},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	proc := registrytest.Start(t, cfgPath, addr)
	client := tlsFiles.Client()
	expect := func(user, pass string, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /v2/ as %q: %s, want %d", user, resp.Status, want)
		}
	}

	expect("", "", http.StatusUnauthorized)
	expect("ci", "ci-password", http.StatusOK)
	expect("ops", "ops-password", http.StatusUnauthorized)

	if r := place(map[string]secret.Value{"ci": "ci-password", "ops": "ops-password"}); strings.Join(r.Added, ",") != "ops" {
		t.Fatalf("adding ops: %+v", r)
	}
	expect("ops", "ops-password", http.StatusOK)
	expect("ci", "ci-password", http.StatusOK)

	if r := place(map[string]secret.Value{"ops": "new-ops-password"}); strings.Join(r.Removed, ",") != "ci" || strings.Join(r.Changed, ",") != "ops" {
		t.Fatalf("removing ci, changing ops: %+v", r)
	}
	expect("ci", "ci-password", http.StatusUnauthorized)
	expect("ops", "ops-password", http.StatusUnauthorized)
	expect("ops", "new-ops-password", http.StatusOK)

	if n := strings.Count(proc.Log(), "listening on "+addr); n != 1 {
		t.Errorf("the registry started %d times, want once", n)
	}
}
