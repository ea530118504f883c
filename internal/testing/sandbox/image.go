package sandbox

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

var imageSeq atomic.Int64

// refRE is what Push and Pull accept as a repository:tag.
var refRE = regexp.MustCompile(`^[a-z0-9]+(?:[._/-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// CopyError is a failed skopeo copy, with its output.
type CopyError struct {
	Agent  int
	Args   []string
	Output string
	Err    error
}

func (e *CopyError) Error() string {
	return fmt.Sprintf("skopeo on agent %d (%s): %v:\n%s", e.Agent, strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Output))
}

func (e *CopyError) Unwrap() error { return e.Err }

// Push builds a small, unique one-layer OCI image and copies it with skopeo,
// run inside agent i, to docker://<registry address>/<ref> (ref is
// "repository:tag"). TLS is verified as on a real agent: with the CA the
// trust reconciler put in /etc/docker/certs.d. It returns the manifest digest.
func (s *Sandbox) Push(ctx context.Context, i int, ref string) (string, error) {
	return s.push(ctx, i, ref, nil)
}

func (s *Sandbox) push(ctx context.Context, i int, ref string, flags []string) (string, error) {
	if !refRE.MatchString(ref) {
		return "", fmt.Errorf("sandbox: %q is not a repository:tag", ref)
	}
	n := imageSeq.Add(1)
	layout := filepath.Join(s.Dir, "images", fmt.Sprintf("push-%d", n))
	digest, err := WriteOCIImage(layout, "latest", fmt.Sprintf("pushed from agent %d as %s at %s (#%d)\n", i, ref, time.Now().Format(time.RFC3339Nano), n))
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(layout)
	if err := s.skopeo(ctx, i, flags, "oci:"+layout+":latest", "docker://"+s.RegistryAddress+"/"+ref); err != nil {
		return "", err
	}
	return digest, nil
}

// Pull copies docker://<registry address>/<ref> with skopeo, run inside
// agent i, into an OCI layout and returns the manifest digest it got.
func (s *Sandbox) Pull(ctx context.Context, i int, ref string) (string, error) {
	return s.pull(ctx, i, ref, nil)
}

func (s *Sandbox) pull(ctx context.Context, i int, ref string, flags []string) (string, error) {
	if !refRE.MatchString(ref) {
		return "", fmt.Errorf("sandbox: %q is not a repository:tag", ref)
	}
	layout := filepath.Join(s.Dir, "images", fmt.Sprintf("pull-%d", imageSeq.Add(1)))
	if err := os.MkdirAll(filepath.Dir(layout), 0o755); err != nil {
		return "", err
	}
	defer os.RemoveAll(layout)
	if err := s.skopeo(ctx, i, flags, "docker://"+s.RegistryAddress+"/"+ref, "oci:"+layout+":pulled"); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return "", fmt.Errorf("sandbox: pulled image: %w", err)
	}
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		return "", fmt.Errorf("sandbox: pulled image index %s: %v", b, err)
	}
	return idx.Manifests[0].Digest, nil
}

// skopeo copies src to dst inside agent i; flags (credentials) go before
// the two.
func (s *Sandbox) skopeo(ctx context.Context, i int, flags []string, src, dst string) error {
	h := s.Agent(i)
	if h == nil {
		return fmt.Errorf("sandbox: no agent %d", i)
	}
	policy := filepath.Join(s.Dir, "policy.json")
	if _, err := os.Stat(policy); err != nil {
		if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := append(append([]string{"--policy", policy, "copy", "--retry-times", "0"}, flags...), src, dst)
	out, err := h.Command(ctx, "skopeo", args...).CombinedOutput()
	if err != nil {
		return &CopyError{Agent: i, Args: redactCreds(args), Output: string(out), Err: err}
	}
	return nil
}

// WriteOCIImage writes a one-layer OCI image layout to dir, tagged tag,
// whose layer holds hello.txt with body. It returns the manifest digest.
func WriteOCIImage(dir, tag, body string) (string, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", err
	}
	put := func(b []byte) (string, int, error) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		return "sha256:" + h, len(b), os.WriteFile(filepath.Join(blobs, h), b, 0o644)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg,
		ModTime: time.Unix(0, 0)}); err != nil {
		return "", err
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	diff := sha256.Sum256(layer.Bytes())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(layer.Bytes()); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	layerDigest, layerSize, err := put(gz.Bytes())
	if err != nil {
		return "", err
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}}})
	cfgDigest, cfgSize, err := put(cfg)
	if err != nil {
		return "", err
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfgSize},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": layerSize}}})
	manDigest, manSize, err := put(man)
	if err != nil {
		return "", err
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manDigest, "size": manSize,
		"annotations": map[string]string{"org.opencontainers.image.ref.name": tag}}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return "", err
	}
	return manDigest, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// redactCreds hides the password of --src-creds/--dest-creds user:password
// in an error message.
func redactCreds(args []string) []string {
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		if strings.HasSuffix(out[i-1], "-creds") {
			user, _, _ := strings.Cut(out[i], ":")
			out[i] = user + ":<redacted>"
		}
	}
	return out
}
