package controllers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// writeOCILayout builds a one-layer OCI image layout in dir, tagged latest.
func writeOCILayout(t *testing.T, dir string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	must(t, os.MkdirAll(blobs, 0o755))
	put := func(b []byte) (string, int) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		must(t, os.WriteFile(filepath.Join(blobs, h), b, 0o644))
		return "sha256:" + h, len(b)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	body := []byte("hello from the registry-operator trust test\n")
	must(t, tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
	_, err := tw.Write(body)
	must(t, err)
	must(t, tw.Close())
	diffSum := sha256.Sum256(layer.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(layer.Bytes())
	must(t, err)
	must(t, zw.Close())
	layerDigest, layerSize := put(gz.Bytes())
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffSum[:])}}})
	cfgDigest, cfgSize := put(cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfgSize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layerSize}}})
	manDigest, manSize := put(man)
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manDigest, "size": manSize,
		"annotations": map[string]string{"org.opencontainers.image.ref.name": "latest"}}}})
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
}

// TestFleetSkopeoTrust: a real docker-registry serves on one host with the
// operator's certificate; skopeo on another host cannot push to it until
// the trust pass has written /etc/docker/certs.d, and can afterwards.
func TestFleetSkopeoTrust(t *testing.T) {
	for _, bin := range []string{"skopeo", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil && os.Geteuid() == 0 {
			t.Fatalf("%s not installed (Debian packages skopeo, docker-registry): %v", bin, err)
		}
	}
	e := newFleetEnv(t, 2, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Conntrack = nil
		s.App = nil
	})
	reg, client := e.f.Host(0), e.f.Host(1)
	p := newFleetPKI(t, reg.Address)
	e.store.SetPKI(p.pki)

	dir := t.TempDir()
	addr := startFleetRegistry(t, reg, p, dir)
	layout := filepath.Join(dir, "image")
	writeOCILayout(t, layout)
	policy := filepath.Join(dir, "policy.json")
	must(t, os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644))
	copyImage := func() (string, error) {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		out, err := client.Command(cctx, "skopeo", "--policy", policy, "copy", "--retry-times", "0",
			"oci:"+layout+":latest", "docker://"+addr+"/operator-test/hello:1").CombinedOutput()
		return string(out), err
	}

	out, err := copyImage()
	if err == nil || !strings.Contains(out, "x509: certificate signed by unknown authority") {
		t.Fatalf("before the trust pass: err %v, output:\n%s\nwant an unknown-authority failure", err, out)
	}
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("trust pass: %v", errs)
	}
	if out, err := copyImage(); err != nil {
		t.Fatalf("after the trust pass: %v\n%s", err, out)
	}
}

// startFleetRegistry runs a real docker-registry on h, port 5000, serving
// p's server certificate, with its files in dir; it is killed in cleanup.
func startFleetRegistry(t *testing.T, h *testfleet.Host, p fleetPKI, dir string) string {
	t.Helper()
	return startFleetRegistryWith(t, h, p, dir, "")
}

// startFleetRegistryWith is startFleetRegistry with more top-level config
// (an auth section) appended to the registry's config.yml.
func startFleetRegistryWith(t *testing.T, h *testfleet.Host, p fleetPKI, dir, extra string) string {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, "tls.crt"), p.certPEM, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "tls.key"), p.keyPEM, 0o600))
	config := "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") +
		"\nhttp:\n  addr: :5000\n  tls:\n    certificate: " + filepath.Join(dir, "tls.crt") + "\n    key: " + filepath.Join(dir, "tls.key") + "\n" + extra
	must(t, os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := h.Command(ctx, "docker-registry", "serve", filepath.Join(dir, "config.yml"))
	var regLog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &regLog, &regLog
	cmd.WaitDelay = 5 * time.Second // nsenter's child may outlive it for a moment
	must(t, cmd.Start())
	t.Cleanup(func() {
		for _, pid := range descendants(t, h.HolderPID(), "docker-registry") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", regLog.String())
		}
	})
	addr := h.Address + ":5000"
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not listen on %s: %v\n%s", addr, err, regLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return addr
}
