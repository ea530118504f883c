package registryconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
)

// TestRealRegistry runs Debian's docker-registry 2.8 on files this package
// rendered: a private TLS registry with htpasswd auth, a debug listener
// with metrics and health, then the same storage read-only.
func TestRealRegistry(t *testing.T) {
	dir := t.TempDir()
	tlsFiles := registrytest.WriteTLS(t, dir)
	users, err := htpasswd.Keep(nil, map[string]secret.Value{"ci": "ci-password"}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswdPath := filepath.Join(dir, "htpasswd")
	writeFile(t, htpasswdPath, users.File, 0o600)

	addr, debugAddr := registrytest.FreeAddr(t), registrytest.FreeAddr(t)
	c := Config{
		LogLevel: "info",
		Storage:  Storage{RootDirectory: filepath.Join(dir, "data"), DeleteEnabled: true},
		HTTP: HTTP{Addr: addr, Secret: "a-shared-http-secret-for-the-test",
			TLS:   &TLS{Certificate: tlsFiles.Cert, Key: tlsFiles.Key},
			Debug: &Debug{Addr: debugAddr, Prometheus: true}},
		Htpasswd: &Htpasswd{Realm: "registry-test", Path: htpasswdPath},
		Health:   &Health{Interval: time.Second, Threshold: 3},
	}
	proc := registrytest.Start(t, writeConfig(t, dir, "config.yml", c), addr)
	client := tlsFiles.Client()
	base := "https://" + addr

	resp, _ := send(t, client, http.MethodGet, base+"/v2/", "", "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v2/: %s, want 401", resp.Status)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `Basic realm="registry-test"`) {
		t.Errorf("WWW-Authenticate = %q, want the configured realm", got)
	}
	if resp, _ := send(t, client, http.MethodGet, base+"/v2/", "ci", "wrong", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %s, want 401", resp.Status)
	}
	if resp, _ := send(t, client, http.MethodGet, base+"/v2/", "ci", "ci-password", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ as ci: %s, want 200", resp.Status)
	}

	blob := []byte("a blob pushed through the rendered config\n")
	digest := pushBlob(t, client, base, blob, http.StatusAccepted)
	if resp, _ := send(t, client, http.MethodGet, base+"/v2/test/hello/blobs/"+digest, "", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous blob pull: %s, want 401", resp.Status)
	}
	pullBlob(t, client, base, digest, blob)

	if resp, body := send(t, http.DefaultClient, http.MethodGet, "http://"+debugAddr+MetricsPath, "", "", nil); resp.StatusCode != http.StatusOK ||
		!strings.Contains(string(body), "\nregistry_http_requests_total{") {
		t.Errorf("debug %s: %s, want registry_ metric families; got:\n%.2000s", MetricsPath, resp.Status, body)
	}
	if resp, body := send(t, http.DefaultClient, http.MethodGet, "http://"+debugAddr+"/debug/health", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("debug /debug/health: %s %s", resp.Status, body)
	}
	if strings.Contains(proc.Log(), "No HTTP secret provided") {
		t.Errorf("the registry did not read http.secret from the file:\n%s", proc.Log())
	}

	t.Run("readonly", func(t *testing.T) {
		ro := c
		ro.Storage.ReadOnly = true
		ro.HTTP.Addr, ro.HTTP.Debug = registrytest.FreeAddr(t), nil
		registrytest.Start(t, writeConfig(t, dir, "readonly.yml", ro), ro.HTTP.Addr)
		roBase := "https://" + ro.HTTP.Addr
		pushBlob(t, client, roBase, []byte("refused while read-only\n"), http.StatusMethodNotAllowed)
		pullBlob(t, client, roBase, digest, blob)
	})
}

func writeConfig(t *testing.T, dir, name string, c Config) string {
	t.Helper()
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	writeFile(t, p, b, 0o600)
	return p
}

func writeFile(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

// pushBlob uploads blob as ci: POST opens the upload (want is its status:
// 202, or 405 when read-only), PUT with the digest completes it.
func pushBlob(t *testing.T, client *http.Client, base string, blob []byte, want int) string {
	t.Helper()
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp, body := send(t, client, http.MethodPost, base+"/v2/test/hello/blobs/uploads/", "ci", "ci-password", nil)
	if resp.StatusCode != want {
		t.Fatalf("open blob upload on %s: %s %s, want %d", base, resp.Status, body, want)
	}
	if want != http.StatusAccepted {
		return digest
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("upload location: %v", err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	if resp, body := send(t, client, http.MethodPut, loc.String(), "ci", "ci-password", blob); resp.StatusCode != http.StatusCreated {
		t.Fatalf("complete blob upload on %s: %s %s, want 201", base, resp.Status, body)
	}
	return digest
}

func pullBlob(t *testing.T, client *http.Client, base, digest string, want []byte) {
	t.Helper()
	resp, body := send(t, client, http.MethodGet, base+"/v2/test/hello/blobs/"+digest, "ci", "ci-password", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("blob pull from %s: %s %q", base, resp.Status, body)
	}
}

func send(t *testing.T, client *http.Client, method, url, user, pass string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}
