//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(10, "garbage-collection", garbageCollection) }

// garbageCollection: two images pushed, one manifest deleted through the
// registry API, a scheduled garbage collection (runner binary: Debian's
// docker-registry on the agent) inside a read-only window. The deleted
// image's blobs leave the data directory, the other image still pulls,
// uploads are refused during the window and work after it.
func garbageCollection(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		if r.Spec.App.Env == nil {
			r.Spec.App.Env = map[string]string{}
		}
		r.Spec.App.Env["REGISTRY_STORAGE_DELETE_ENABLED"] = "true"
	}); err != nil {
		t.Fatal(err)
	}
	c := registryClient(ctx, t, sb)
	// A manifest DELETE answers 405 until the registry runs with deletes on.
	none := "/v2/e2e/gc-none/manifests/sha256:" + strings.Repeat("0", 64)
	sb.Eventually(t, 2*time.Minute, "the registry runs with deletes enabled", check(func(ctx context.Context) error {
		if code := c.do(ctx, t, "DELETE", none); code == http.StatusMethodNotAllowed || code == 0 {
			return fmt.Errorf("DELETE of a manifest answered %d", code)
		}
		return nil
	}))
	ready(t, sb)
	pushPull(t, sb, 1, 2, "e2e/gc-keep:1")
	pushPull(t, sb, 1, 2, "e2e/gc-drop:1")
	drop := c.blobs(ctx, t, "e2e/gc-drop", "1")
	keep := c.blobs(ctx, t, "e2e/gc-keep", "1")
	if code := c.do(ctx, t, "DELETE", "/v2/e2e/gc-drop/manifests/"+drop[0]); code != http.StatusAccepted {
		sb.Fail(t, "DELETE of the manifest answers 202", fmt.Sprint(code))
	}
	for _, d := range append(append([]string{}, drop...), keep...) {
		if !c.stored(ctx, sb, d) {
			sb.Fail(t, "every blob is in the data directory before garbage collection", d+" is not")
		}
	}

	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		r.Spec.Maintenance = &v1alpha1.MaintenanceSpec{GarbageCollection: &v1alpha1.GarbageCollectionSpec{
			Schedule: "* * * * *", MaxReadOnly: v1alpha1.D(5 * time.Minute), Timeout: v1alpha1.D(2 * time.Minute),
			Runner: v1alpha1.RunnerBinary, BinaryPath: "/usr/bin/docker-registry"}}
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Every minute is due: turn it off for the scenarios after this one.
		if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.Maintenance = nil }); err != nil {
			t.Error(err)
		}
	}()
	sb.Eventually(t, 4*time.Minute, "the registry refuses uploads (405) inside the window", check(func(ctx context.Context) error {
		if code := c.do(ctx, t, "POST", "/v2/e2e/gc-probe/blobs/uploads/"); code != http.StatusMethodNotAllowed {
			return fmt.Errorf("POST blobs/uploads/ answered %d", code)
		}
		return nil
	}))
	sb.Eventually(t, 4*time.Minute, "a garbage collection succeeded",
		metricIs(sb, 1, "registry_operator_gc_runs_total", "result", "success"))
	sb.Eventually(t, 3*time.Minute, "writes are restored", metricIs(sb, 0, "registry_operator_registry_read_only"))
	for _, d := range drop {
		if c.stored(ctx, sb, d) {
			sb.Fail(t, "the deleted image's blobs are gone from the data directory", d+" is still there")
		}
	}
	for _, d := range keep {
		if !c.stored(ctx, sb, d) {
			sb.Fail(t, "the other image's blobs stay", d+" is gone")
		}
	}
	ready(t, sb)
	if _, err := sb.Pull(ctx, 2, "e2e/gc-keep:1"); err != nil {
		sb.Fail(t, "the other image still pulls", err.Error())
	}
	pushPull(t, sb, 1, 2, "e2e/gc-after:1")
	st, err := sb.Status(ctx)
	if err != nil || st.Maintenance == nil || st.Maintenance.LastResult != "success" {
		sb.Fail(t, "the status page's Maintenance section shows the successful run", fmt.Sprintf("%+v %v", st.Maintenance, err))
	}
	t.Logf("maintenance: %+v", *st.Maintenance)
}

type registryHTTP struct {
	base   string
	client *http.Client
}

// registryClient talks to the registry as a client trusting the CA would.
func registryClient(ctx context.Context, t *testing.T, sb *sandbox.Sandbox) *registryHTTP {
	t.Helper()
	f, err := stateSet(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(f[pki.FileBundle]) {
		t.Fatal("no trust bundle in the state dir")
	}
	return &registryHTTP{base: "https://" + sb.RegistryAddress, client: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}}
}

func (c *registryHTTP) do(ctx context.Context, t *testing.T, method, path string) int {
	t.Helper()
	code, _, err := c.get(ctx, method, path)
	if err != nil {
		return 0
	}
	return code
}

func (c *registryHTTP) get(ctx context.Context, method, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// blobs are an image's manifest digest, then its config and layers.
func (c *registryHTTP) blobs(ctx context.Context, t *testing.T, repo, tag string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest %s:%s: %d %v", repo, tag, resp.StatusCode, err)
	}
	out := []string{resp.Header.Get("Docker-Content-Digest"), m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// stored reports whether blob digest is in the registry's data directory
// on its agent.
func (c *registryHTTP) stored(ctx context.Context, sb *sandbox.Sandbox, digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	if len(hex) < 2 {
		return false
	}
	_, err := sb.RegistryAgent().Stat(ctx, "/data/docker-registry/docker/registry/v2/blobs/sha256/"+hex[:2]+"/"+hex+"/data")
	return err == nil
}

func init() { register(11, "garbage-collection-faults", gcFaults) }

// gcHang stands in for a registry binary whose garbage-collect hangs.
const gcHang = "/data/registry-gc-hang"

// gcFaults: a garbage-collect that hangs is ended at its timeout and writes
// come back; an operator killed with SIGKILL inside a window leaves it
// recorded, and the next operator closes it and restores writes.
func gcFaults(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := sb.RegistryAgent().WriteFile(ctx, gcHang, []byte("#!/bin/sh\nexec sleep 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := registryClient(ctx, t, sb)
	gc := func(timeout time.Duration) func(r *v1alpha1.Registry) {
		return func(r *v1alpha1.Registry) {
			r.Spec.Maintenance = &v1alpha1.MaintenanceSpec{GarbageCollection: &v1alpha1.GarbageCollectionSpec{
				Schedule: "* * * * *", MaxReadOnly: v1alpha1.D(5 * time.Minute), Timeout: v1alpha1.D(timeout),
				Runner: v1alpha1.RunnerBinary, BinaryPath: gcHang}}
		}
	}
	defer func() {
		if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.Maintenance = nil }); err != nil {
			t.Error(err)
		}
	}()
	writable := check(func(ctx context.Context) error {
		if code := c.do(ctx, t, "POST", "/v2/e2e/gc-probe/blobs/uploads/"); code != http.StatusAccepted {
			return fmt.Errorf("POST blobs/uploads/ answered %d", code)
		}
		return nil
	})

	// A hanging garbage-collect: ended at its 15 s timeout.
	if err := sb.EditConfig(gc(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, 4*time.Minute, "a hanging garbage-collect ends as a timeout",
		metricIs(sb, 1, "registry_operator_gc_runs_total", "result", "timeout"))
	sb.Eventually(t, 2*time.Minute, "writes are restored after the timeout", writable)

	// SIGKILL inside the next window, while garbage-collect hangs.
	if err := sb.EditConfig(gc(3 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, 3*time.Minute, "a window collects", check(func(ctx context.Context) error {
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		if st.Maintenance == nil || !strings.Contains(st.Maintenance.Status, "running garbage-collect") {
			return fmt.Errorf("maintenance: %+v", st.Maintenance)
		}
		return nil
	}))
	if err := sb.KillOperator(); err != nil {
		t.Fatal(err)
	}
	if code := c.do(ctx, t, "POST", "/v2/e2e/gc-probe/blobs/uploads/"); code != http.StatusMethodNotAllowed {
		sb.Fail(t, "the registry is read-only while the killed operator's window is open", fmt.Sprint(code))
	}
	if err := sb.StartOperator(ctx); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, 3*time.Minute, "the next operator closes the recorded window",
		metricIs(sb, 1, "registry_operator_gc_runs_total", "result", "aborted"))
	sb.Eventually(t, 2*time.Minute, "writes are restored after the crash", writable)
	f, err := stateSet(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f[pki.FileGCWindow]; ok {
		// The next minute may have opened a new window already; it must
		// not be the killed operator's.
		t.Logf("a window is recorded again (the schedule is every minute): %s", f[pki.FileGCWindow])
	}
}
