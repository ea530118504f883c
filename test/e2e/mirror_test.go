//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(12, "pull-through-mirror", pullThroughMirror) }

const (
	upstreamID   = "/e2e-upstream"
	upstreamPort = 5002
	mirrorPort   = 5001
)

// pullThroughMirror: an upstream docker-registry on agent 2 (plain HTTP,
// standing in for Docker Hub) holds an image; spec.mirror runs the mirror
// on agent 1; skopeo on agent 0 pulls the image through the mirror, with
// TLS verified through certs.d alone. The mirror's data directory then
// holds it, and every agent's daemon.json lists the mirror.
func pullThroughMirror(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	up, mir := sb.Agent(2), sb.Agent(1)
	upAddr := fmt.Sprintf("%s:%d", up.Address, upstreamPort)
	mirAddr := fmt.Sprintf("%s:%d", mir.Address, mirrorPort)

	startUpstream(ctx, t, sb)
	defer func() {
		if code, body, err := sb.Marathon(context.Background(), "DELETE", "/v2/apps"+upstreamID+"?force=true", nil); err != nil || code >= 300 {
			t.Errorf("delete the upstream app: %d %s %v", code, body, err)
		}
	}()
	pushed := pushUpstream(ctx, t, sb, upAddr, "e2e/upstream-only:1")

	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		r.Spec.Mirror = &v1alpha1.MirrorSpec{Address: mirAddr, RemoteURL: "http://" + upAddr,
			Constraints: [][]string{{"hostname", "LIKE", regexp.QuoteMeta(mir.Address)}}, ContainerPort: mirrorPort}
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The operator never deletes an app: turn the mirror off, then
		// remove its app, so later runs start without it.
		if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.Mirror = nil }); err != nil {
			t.Error(err)
		}
		sb.Eventually(t, 2*time.Minute, "the mirror's certs.d directory and registry-mirrors entry leave the agents",
			check(func(ctx context.Context) error {
				for _, h := range sb.Agents() {
					if b, _ := h.ReadFile(ctx, "/etc/docker/daemon.json"); strings.Contains(string(b), mirAddr) {
						return fmt.Errorf("%s daemon.json: %s", h.Address, b)
					}
					if _, err := h.Stat(ctx, path.Join("/etc/docker/certs.d", mirAddr)); err == nil {
						return fmt.Errorf("%s still has certs.d/%s", h.Address, mirAddr)
					}
				}
				return nil
			}))
		if code, body, err := sb.Marathon(context.Background(), "DELETE", "/v2/apps"+v1alpha1.DefaultMirrorID+"?force=true", nil); err != nil || code >= 300 {
			t.Errorf("delete the mirror app: %d %s %v", code, body, err)
		}
		ready(t, sb)
	}()

	sb.Eventually(t, 3*time.Minute, "the mirror app is in sync and healthy, and the sandbox converged", check(func(ctx context.Context) error {
		st, err := sb.Status(ctx)
		if err != nil {
			return err
		}
		for _, a := range st.Apps {
			if a.ID == v1alpha1.DefaultMirrorID && a.InSync && a.Desired > 0 && a.Healthy >= a.Desired {
				if ok, found := sb.Converged(ctx); !ok {
					return fmt.Errorf("%s", found)
				}
				return nil
			}
		}
		return fmt.Errorf("apps: %+v", st.Apps)
	}))
	sb.Eventually(t, within(sb), "registry_operator_app_instances{app=/registry-mirror,state=healthy} is 1",
		metricIs(sb, 1, "registry_operator_app_instances", "app", v1alpha1.DefaultMirrorID, "state", "healthy"))

	// Agent 0 trusts the mirror only through certs.d/<mirror>/ca.crt.
	pulled := pullThrough(ctx, t, sb, 0, mirAddr, "e2e/upstream-only:1")
	if pulled != pushed {
		sb.Fail(t, "the image pulled through the mirror is the upstream's ("+pushed+")", pulled)
	}
	hex := strings.TrimPrefix(pushed, "sha256:")
	cached := path.Join(v1alpha1.DefaultMirrorDataHost, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
	sb.Eventually(t, 30*time.Second, "the mirror's data directory on "+mir.Address+" holds the manifest", check(func(ctx context.Context) error {
		_, err := mir.Stat(ctx, cached)
		return err
	}))
	for _, h := range sb.Agents() {
		b, err := h.ReadFile(ctx, "/etc/docker/daemon.json")
		var d struct {
			Mirrors []string `json:"registry-mirrors"`
		}
		if err != nil || json.Unmarshal(b, &d) != nil || !strings.Contains(strings.Join(d.Mirrors, ","), "https://"+mirAddr) {
			sb.Fail(t, h.Address+"'s daemon.json lists https://"+mirAddr+" in registry-mirrors", fmt.Sprintf("%s (%v)", b, err))
		}
	}
	// Marathon never sees the upstream's configuration, only its hash.
	if _, body, err := sb.Marathon(ctx, "GET", "/v2/apps"+v1alpha1.DefaultMirrorID, nil); err != nil || strings.Contains(string(body), upAddr) {
		sb.Fail(t, "the mirror app's definition does not name the upstream", fmt.Sprintf("%s %v", body, err))
	}
}

// startUpstream runs docker-registry on agent 2 through the emulator, from
// a config file written there: plain HTTP, its own storage.
func startUpstream(ctx context.Context, t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	up := sb.Agent(2)
	cfg := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n"
	if err := up.WriteFile(ctx, "/etc/e2e-upstream/config.yml", []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	app := map[string]any{
		"id": upstreamID, "instances": 1, "cpus": 0.1, "mem": 64,
		"args": []string{"serve", "/upstream/config.yml"},
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "registry:2.8.3"},
			"portMappings": []map[string]any{{"containerPort": upstreamPort, "protocol": "tcp", "name": "registry"}},
			"volumes": []map[string]any{
				{"containerPath": "/upstream", "hostPath": "/etc/e2e-upstream", "mode": "RO"},
				{"containerPath": "/var/lib/registry", "hostPath": "/data/e2e-upstream", "mode": "RW"}}},
		"networks":    []map[string]any{{"mode": "container/bridge"}},
		"constraints": [][]string{{"hostname", "LIKE", regexp.QuoteMeta(up.Address)}},
	}
	if code, body, err := sb.Marathon(ctx, "POST", "/v2/apps", app); err != nil || code >= 300 {
		t.Fatalf("create the upstream app: %d %s %v", code, body, err)
	}
	sb.Eventually(t, time.Minute, "the upstream answers GET /v2/ on "+up.Address, check(func(ctx context.Context) error {
		out, err := sb.Exec(ctx, 2, "curl", "-fsS", fmt.Sprintf("http://%s:%d/v2/", up.Address, upstreamPort))
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}))
}

// pushUpstream copies a fresh image to the upstream over plain HTTP.
func pushUpstream(ctx context.Context, t *testing.T, sb *sandbox.Sandbox, upAddr, ref string) string {
	t.Helper()
	layout := filepath.Join(sb.Dir, "images", "upstream-only")
	defer os.RemoveAll(layout)
	digest, err := sandbox.WriteOCIImage(layout, "latest", "only the upstream has this image "+time.Now().Format(time.RFC3339Nano)+"\n")
	if err != nil {
		t.Fatal(err)
	}
	out, err := skopeoCopy(ctx, sb, 2, "oci:"+layout+":latest", "docker://"+upAddr+"/"+ref, "--dest-tls-verify=false")
	if err != nil {
		sb.Fail(t, "skopeo push to the upstream succeeds", fmt.Sprintf("%v: %s", err, out))
	}
	return digest
}

// pullThrough copies docker://<mirror>/<ref> on agent i with TLS verified
// and returns the manifest digest it got.
func pullThrough(ctx context.Context, t *testing.T, sb *sandbox.Sandbox, i int, mirAddr, ref string) string {
	t.Helper()
	layout := filepath.Join(sb.Dir, "images", "through-mirror")
	defer os.RemoveAll(layout)
	if err := os.MkdirAll(filepath.Dir(layout), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := skopeoCopy(ctx, sb, i, "docker://"+mirAddr+"/"+ref, "oci:"+layout+":pulled")
	if err != nil {
		sb.Fail(t, "skopeo pull through the mirror on agent "+fmt.Sprint(i)+" succeeds (TLS through certs.d)", fmt.Sprintf("%v: %s", err, out))
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err != nil || json.Unmarshal(b, &idx) != nil || len(idx.Manifests) != 1 {
		t.Fatalf("pulled image index %s: %v", b, err)
	}
	return idx.Manifests[0].Digest
}

func skopeoCopy(ctx context.Context, sb *sandbox.Sandbox, i int, src, dst string, flags ...string) ([]byte, error) {
	policy := filepath.Join(sb.Dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append([]string{"--policy", policy, "copy", "--retry-times", "0"}, flags...)
	args = append(args, src, dst)
	return sb.Agent(i).Command(ctx, "skopeo", args...).CombinedOutput()
}
