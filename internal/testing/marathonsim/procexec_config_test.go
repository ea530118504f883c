package marathonsim

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The registry image with args "serve /certs/config.yml" runs from that
// file, read on the agent through the app's volume, with the container
// paths in it (TLS files, htpasswd, storage) reaching the volumes' host
// paths: as the image and its mounts do on a real agent.
func TestProcExecRegistryRunsFromConfigFile(t *testing.T) {
	agent := netnsAgent(t, "agent-c")
	dir := t.TempDir()
	certs, data := filepath.Join(dir, "certs"), filepath.Join(dir, "data")
	_ = os.MkdirAll(certs, 0o755)
	_ = os.MkdirAll(data, 0o755)
	_, pool := writeServerCert(t, certs, agent.IP)
	hash, err := bcrypt.GenerateFromPassword([]byte("ci-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "htpasswd"), []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := `version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: 0.0.0.0:5000
  secret: from-the-file
  tls:
    certificate: /certs/tls.crt
    key: /certs/tls.key
auth:
  htpasswd:
    realm: sim
    path: /certs/htpasswd
`
	if err := os.WriteFile(filepath.Join(certs, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	pe := NewProcExec(ProcOptions{CheckInterval: 100 * time.Millisecond})
	sim := New(Options{Agents: []Agent{agent}, Executor: pe, Tick: 20 * time.Millisecond})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { hs.CloseClientConnections(); sim.Close(); hs.Close() })
	r := do(t, hs.URL, "POST", "/v2/apps", map[string]any{
		"id": "/registry", "instances": 1, "cpus": 0.5, "mem": 256, "args": []any{"serve", "/certs/config.yml"},
		"container": map[string]any{
			"type":   "DOCKER",
			"docker": map[string]any{"image": "registry:2.8", "network": "BRIDGE", "portMappings": []any{map[string]any{"containerPort": 5000, "hostPort": 0}}},
			"volumes": []any{
				map[string]any{"containerPath": "/certs", "hostPath": certs, "mode": "RO"},
				map[string]any{"containerPath": "/var/lib/registry", "hostPath": data, "mode": "RW"},
			},
		},
		"healthChecks": []any{map[string]any{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 10}},
	})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	for obj(do(t, hs.URL, "GET", "/v2/apps/registry", nil).obj()["app"])["tasksHealthy"] != 1.0 {
		if time.Now().After(deadline) {
			t.Fatal("the registry never became healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	port := fmt.Sprint(obj(arr(obj(do(t, hs.URL, "GET", "/v2/apps/registry", nil).obj()["app"])["tasks"])[0])["ports"].([]any)[0])
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(agent.IP, port)+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("registry over TLS: %v", err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := get("", ""); got != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401 (auth from the file)", got)
	}
	if got := get("ci", "ci-password"); got != http.StatusOK {
		t.Errorf("ci: %d, want 200", got)
	}
}

// A config file the agent does not have fails the launch, as the registry
// would exit at start.
func TestRegistryConfigFromFileMissing(t *testing.T) {
	spec := LaunchSpec{AppID: "/registry", App: AppSpec{Args: []string{"serve", "/certs/config.yml"},
		Container: &ContainerSpec{Volumes: []VolumeSpec{{ContainerPath: "/certs", HostPath: filepath.Join(t.TempDir(), "none")}}}}}
	if _, err := registryConfigFromFile(spec, "/certs/config.yml", "127.0.0.1:5000"); err == nil ||
		!strings.Contains(err.Error(), "config.yml") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}
