package operator

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Secrets set in the spec (an S3 key in app.env, the HTTP secret read from
// httpSecretFile) never appear on /, /api/status or in the plan, even when
// the app in Marathon differs in exactly those values.
func TestSecretsNeverShown(t *testing.T) {
	const s3Key, httpSecret, oldValue = "s3-hunter2-key", "http-hunter2-secret", "old-hunter2-value"
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "http-secret")
	if err := os.WriteFile(secretFile, []byte(httpSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "registry.yaml")
	spec := `apiVersion: registry-operator/v1alpha1
kind: Registry
spec:
  marathon: {urls: ["http://127.0.0.1:1"]}
  registry: {address: "reg.example:5000"}
  tls: {stateDir: ` + dir + `/state}
  app:
    httpSecretFile: ` + secretFile + `
    env: {REGISTRY_STORAGE_S3_SECRETKEY: ` + s3Key + `, REGISTRY_STORAGE_S3_REGION: eu-west-1}
`
	if err := os.WriteFile(cfg, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := New(Options{ConfigPath: cfg, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()

	// What the app reconciler records when Marathon holds other values.
	desired, err := marathon.BuildRegistryApp("registry", o.spec(), marathon.RegistryInputs{HTTPSecret: httpSecret, ConfigHash: "sha256-of-config"})
	if err != nil {
		t.Fatal(err)
	}
	actual := map[string]any{"env": map[string]any{"REGISTRY_STORAGE_S3_SECRETKEY": oldValue,
		marathon.EnvHTTPSecret: oldValue, "REGISTRY_STORAGE_S3_REGION": "us-east-1"}}
	diff := marathon.Diff(desired, actual)
	if !strings.Contains(strings.Join(diff, "\n"), "us-east-1") {
		t.Fatalf("the diff must show non-secret env changes, got %q", diff)
	}
	o.store.SetApp(state.App{ID: "/registry", Exists: true, Desired: 1, Diff: diff})

	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	shown := map[string]string{}
	for _, p := range []string{"/", "/api/status"} {
		res, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", p, res.Status)
		}
		shown[p] = string(b)
	}
	if !strings.Contains(shown["/api/status"], "REGISTRY_STORAGE_S3_REGION") {
		t.Fatalf("/api/status does not show the spec, so the check below proves nothing:\n%s", shown["/api/status"])
	}
	var plan bytes.Buffer
	RenderPlan(&plan, o.src.Registry(), o.store, nil)
	shown["plan"] = plan.String()
	for where, text := range shown {
		for _, secret := range []string{s3Key, httpSecret, oldValue} {
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the secret %q", where, secret)
			}
		}
	}
}
