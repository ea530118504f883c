package registryconfig

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
	"go.yaml.in/yaml/v3"
)

// TestRealPullThroughMirror runs two docker-registry processes on rendered
// files: an upstream on plain HTTP (standing in for Docker Hub) and a TLS
// mirror whose proxy section names it. A client fetches a blob only the
// upstream has through the mirror, which keeps a copy. (docker-registry
// 2.8 sends proxy credentials only to a token service, as Docker Hub's;
// the credentials' place in the file is TestProxyRenderedAndRedacted's.)
func TestRealPullThroughMirror(t *testing.T) {
	dir := t.TempDir()
	upAddr := registrytest.FreeAddr(t)
	up := Config{Storage: Storage{RootDirectory: filepath.Join(dir, "upstream")},
		HTTP: HTTP{Addr: upAddr, Secret: "upstream-secret"}}
	registrytest.Start(t, writeConfig(t, dir, "upstream.yml", up), upAddr)
	blob := []byte("only the upstream has this blob\n")
	digest := pushBlob(t, http.DefaultClient, "http://"+upAddr, blob, http.StatusAccepted)

	tlsFiles := registrytest.WriteTLS(t, dir)
	mirAddr := registrytest.FreeAddr(t)
	data := filepath.Join(dir, "mirror")
	mir := Config{Storage: Storage{RootDirectory: data},
		HTTP:  HTTP{Addr: mirAddr, Secret: "mirror-secret", TLS: &TLS{Certificate: tlsFiles.Cert, Key: tlsFiles.Key}},
		Proxy: &Proxy{RemoteURL: "http://" + upAddr}}
	registrytest.Start(t, writeConfig(t, dir, "mirror.yml", mir), mirAddr)

	resp, body := send(t, tlsFiles.Client(), http.MethodGet, "https://"+mirAddr+"/v2/test/hello/blobs/"+digest, "", "", nil)
	if resp.StatusCode != http.StatusOK || string(body) != string(blob) {
		t.Fatalf("blob through the mirror: %s %q", resp.Status, body)
	}
	hex := strings.TrimPrefix(digest, "sha256:")
	cached := filepath.Join(data, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	// The mirror stores what it fetched after answering the client.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(cached)
		if err == nil && string(b) == string(blob) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror's data directory does not hold the blob (%s): %v", cached, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProxyRenderedAndRedacted(t *testing.T) {
	c := full()
	c.Proxy = &Proxy{RemoteURL: "https://registry-1.docker.io", Username: "hubuser", Password: "hub-pw-s3cr3t"}
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Proxy map[string]string `yaml:"proxy"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Proxy["remoteurl"] != "https://registry-1.docker.io" || doc.Proxy["username"] != "hubuser" || doc.Proxy["password"] != "hub-pw-s3cr3t" {
		t.Errorf("proxy section: %v", doc.Proxy)
	}
	red, err := Redacted(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(red), "hub-pw-s3cr3t") {
		t.Errorf("redacted config shows the upstream password:\n%s", red)
	}
	for name, p := range map[string]Proxy{
		"ftp":           {RemoteURL: "ftp://hub"},
		"user info":     {RemoteURL: "https://u:p@hub"},
		"user only":     {RemoteURL: "https://hub", Username: "u"},
		"password only": {RemoteURL: "https://hub", Password: "p"},
	} {
		c.Proxy = &p
		if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "proxy.") {
			t.Errorf("%s: Render = %v, want a proxy error", name, err)
		} else if strings.Contains(err.Error(), "u:p@") {
			t.Errorf("%s: the error shows user info: %v", name, err)
		}
	}
}

// A running mirror whose upstream goes down still answers GET /v2/
// itself: the app reconciler's probe of the mirror sees an upstream
// outage as no reason to restart it. (docker-registry 2.8 does ping the
// upstream when it starts and exits if it cannot reach it: docs/mirror.md.)
func TestRealMirrorAnswersV2WithUpstreamDown(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer upstream.Close()
	dir := t.TempDir()
	tlsFiles := registrytest.WriteTLS(t, dir)
	addr := registrytest.FreeAddr(t)
	c := Config{Storage: Storage{RootDirectory: filepath.Join(dir, "mirror")},
		HTTP:  HTTP{Addr: addr, Secret: "mirror-secret", TLS: &TLS{Certificate: tlsFiles.Cert, Key: tlsFiles.Key}},
		Proxy: &Proxy{RemoteURL: upstream.URL}}
	registrytest.Start(t, writeConfig(t, dir, "mirror.yml", c), addr)
	upstream.CloseClientConnections()
	upstream.Close()
	if resp, body := send(t, tlsFiles.Client(), http.MethodGet, "https://"+addr+"/v2/", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ with the upstream down: %s %s", resp.Status, body)
	}
	if resp, _ := send(t, tlsFiles.Client(), http.MethodGet, "https://"+addr+"/v2/library/x/manifests/1", "", "", nil); resp.StatusCode == http.StatusOK {
		t.Fatal("a manifest pull cannot succeed with the upstream down")
	}
}
