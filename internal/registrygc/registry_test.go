package registrygc

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/nodes/nodestest"
	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

// runLocal runs a script the way nodes.Conn.Run does on a node: sh -c
// with the values as positional arguments.
func runLocal(t *testing.T, env []string, script string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return out, err
}

// registry is a docker-registry with deletes enabled and its data in a
// directory of its own (a 64 MiB tmpfs as root, so statvfs sees only it).
type registry struct {
	dir, data, config, addr string
	tls                     registrytest.TLSFiles
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Fatalf("skopeo is not installed (Debian package skopeo): %v", err)
	}
	r := &registry{dir: t.TempDir(), addr: registrytest.FreeAddr(t)}
	r.data = filepath.Join(r.dir, "data")
	must(t, os.MkdirAll(r.data, 0o755))
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", r.data).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", r.data).Run() })
	}
	r.tls = registrytest.WriteTLS(t, r.dir)
	cfg, err := registryconfig.Render(registryconfig.Config{
		Storage: registryconfig.Storage{RootDirectory: r.data, DeleteEnabled: true},
		HTTP:    registryconfig.HTTP{Addr: r.addr, Secret: "http-secret", TLS: &registryconfig.TLS{Certificate: r.tls.Cert, Key: r.tls.Key}},
	})
	must(t, err)
	r.config = filepath.Join(r.dir, "config.yml")
	must(t, os.WriteFile(r.config, cfg, 0o644))
	return r
}

func (r *registry) skopeo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	policy := filepath.Join(r.dir, "policy.json")
	must(t, os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644))
	home := filepath.Join(r.dir, "home")
	must(t, os.MkdirAll(home, 0o700))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "skopeo", append([]string{"--policy", policy}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "XDG_RUNTIME_DIR=" + home}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// push writes a one-layer image and pushes it as test/name:1; it returns
// the image's blob digests (manifest, config, layer).
func (r *registry) push(t *testing.T, name string) (manifest string, blobs []string) {
	t.Helper()
	layout := filepath.Join(r.dir, "image-"+name)
	manifest, err := sandbox.WriteOCIImage(layout, "latest", "image "+name+"\n")
	must(t, err)
	ents, err := os.ReadDir(filepath.Join(layout, "blobs", "sha256"))
	must(t, err)
	for _, e := range ents {
		blobs = append(blobs, "sha256:"+e.Name())
	}
	if out, err := r.skopeo(t, "copy", "--retry-times", "0", "--dest-cert-dir", r.tls.CADir,
		"oci:"+layout+":latest", "docker://"+r.addr+"/test/"+name+":1"); err != nil {
		t.Fatalf("push %s: %v\n%s", name, err, out)
	}
	return manifest, blobs
}

func (r *registry) diskUsage(t *testing.T, dir string) uint64 {
	t.Helper()
	out, err := runLocal(t, nil, ScriptDiskUsage, dir)
	must(t, err)
	n, err := ParseDiskUsage(out)
	must(t, err)
	return n
}

func (r *registry) statvfs(t *testing.T) nodes.FSUsage {
	t.Helper()
	u, err := nodestest.LocalDisk{}.StatFS(r.data)
	must(t, err)
	return u
}

// Debian's docker-registry garbage-collect, run by the binary runner's
// script, removes exactly the blobs of a deleted manifest; Parse counts
// them; the space freed by du and by statvfs is the space those blobs
// took; the other image still pulls.
func TestGarbageCollectRealRegistry(t *testing.T) {
	r := newRegistry(t)
	var goneManifest string
	var gone, kept []string
	t.Run("push and delete", func(t *testing.T) {
		registrytest.Start(t, r.config, r.addr) // stopped when this subtest ends
		goneManifest, gone = r.push(t, "one")
		_, kept = r.push(t, "two")
		req, err := http.NewRequest(http.MethodDelete, "https://"+r.addr+"/v2/test/one/manifests/"+goneManifest, nil)
		must(t, err)
		resp, err := r.tls.Client().Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE manifest: %s, want 202", resp.Status)
		}
	})
	if t.Failed() {
		return
	}

	// What the deleted image's blobs take on disk: their directories.
	var want uint64
	for _, d := range gone {
		hex := strings.TrimPrefix(d, "sha256:")
		want += r.diskUsage(t, filepath.Join(r.data, "docker/registry/v2/blobs/sha256", hex[:2], hex))
	}

	run := func(dryRun bool) Report {
		t.Helper()
		script, args, err := Command{Runner: RunnerBinary, BinaryPath: registrytest.Binary, ConfigPath: r.config, DryRun: dryRun}.Script()
		must(t, err)
		out, err := runLocal(t, nil, script, args...)
		if err != nil {
			t.Fatalf("garbage-collect: %v\n%s", err, out)
		}
		if strings.Contains(string(out), ": marking ") {
			t.Errorf("marking lines were not filtered out:\n%s", out)
		}
		rep, err := Parse(out)
		if err != nil {
			t.Fatalf("parse: %v\n%s", err, out)
		}
		t.Logf("garbage-collect (dry run %v):\n%s", dryRun, out)
		return rep
	}

	duBefore, vfsBefore := r.diskUsage(t, r.data), r.statvfs(t)
	dry := run(true)
	if dry.EligibleBlobs != 3 || dry.DeletedBlobs != 0 || dry.Marked != 3 || dry.EligibleManifests != 0 {
		t.Errorf("dry run report %+v, want 3 marked, 3 eligible, none deleted", dry)
	}
	if du := r.diskUsage(t, r.data); du != duBefore {
		t.Errorf("the dry run changed the data: du %d, was %d", du, duBefore)
	}

	rep := run(false)
	if rep.EligibleBlobs != 3 || rep.DeletedBlobs != 3 || rep.Marked != 3 {
		t.Errorf("report %+v, want 3 marked, 3 eligible, 3 deleted", rep)
	}
	slices.Sort(rep.Eligible)
	slices.Sort(gone)
	if !slices.Equal(rep.Eligible, gone) {
		t.Errorf("eligible %v, want the deleted image's blobs %v", rep.Eligible, gone)
	}
	freed := FreedByDiskUsage(duBefore, r.diskUsage(t, r.data))
	if freed == 0 || freed != want {
		t.Errorf("freed by du: %d bytes, want %d (the deleted image's blobs)", freed, want)
	}
	if os.Geteuid() == 0 { // the data is on its own tmpfs: statvfs sees only it
		if got := FreedByStatVFS(vfsBefore, r.statvfs(t)); got != freed {
			t.Errorf("freed by statvfs: %d bytes, by du %d", got, freed)
		}
	}
	for _, d := range gone {
		hex := strings.TrimPrefix(d, "sha256:")
		if _, err := os.Stat(filepath.Join(r.data, "docker/registry/v2/blobs/sha256", hex[:2], hex)); !os.IsNotExist(err) {
			t.Errorf("blob %s of the deleted image is still there (%v)", d, err)
		}
	}

	t.Run("the other image still pulls", func(t *testing.T) {
		registrytest.Start(t, r.config, r.addr)
		out, err := r.skopeo(t, "copy", "--retry-times", "0", "--src-cert-dir", r.tls.CADir,
			"docker://"+r.addr+"/test/two:1", "oci:"+filepath.Join(r.dir, "pulled")+":latest")
		if err != nil {
			t.Fatalf("pull test/two:1 after GC: %v\n%s (kept blobs %v)", err, out, kept)
		}
		if out, err := r.skopeo(t, "inspect", "--retry-times", "0", "--cert-dir", r.tls.CADir,
			"docker://"+r.addr+"/test/one@"+goneManifest); err == nil {
			t.Errorf("the deleted manifest still resolves:\n%s", out)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
