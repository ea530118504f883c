package dockerauth

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func testConfig(t *testing.T) []byte {
	t.Helper()
	b, err := Config(pull, "registry.example:5000")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTarGzDeterministic(t *testing.T) {
	cfg := testConfig(t)
	a, err := TarGz(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		b, err := TarGz(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("two archives of the same config differ")
		}
	}
	// RFC 1952: flags (byte 3) 0 = no name or comment; mtime (4-7) 0.
	if a[3] != 0 || !bytes.Equal(a[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header carries a name or time: % x", a[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(archiveTime) {
			t.Errorf("%s: uid %d gid %d mtime %s", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		got = append(got, h.Name+" "+os.FileMode(h.Mode).String())
	}
	if want := ".docker/ -rwx------,.docker/config.json -rw-------"; strings.Join(got, ",") != want {
		t.Errorf("entries %q, want %q", strings.Join(got, ","), want)
	}
	other, _ := Config(pull, "other:5000")
	if c, _ := TarGz(other); bytes.Equal(c, a) {
		t.Error("different configs give the same archive")
	}
}

func TestReadTarGz(t *testing.T) {
	cfg := testConfig(t)
	a, err := TarGz(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadTarGz(a)
	if err != nil || !bytes.Equal(back, cfg) {
		t.Fatalf("ReadTarGz(TarGz(cfg)) = %q, %v", back, err)
	}
	if _, err := TarGz([]byte(`{"auths": ` + pullPassword)); !errors.Is(err, ErrUnreadable) || strings.Contains(err.Error(), "pull-P") {
		t.Errorf("TarGz of broken JSON: %v", err)
	}

	mk := func(entries ...tar.Header) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, h := range entries {
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len(cfg))
			}
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				_, _ = tw.Write(cfg)
			}
		}
		_ = tw.Close()
		_ = zw.Close()
		return buf.Bytes()
	}
	reg := func(name string) tar.Header { return tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600} }
	// Archives made by hand with `tar czf docker.tar.gz .docker` or from ".".
	for _, name := range []string{"./.docker/config.json", ".docker/config.json"} {
		got, err := ReadTarGz(mk(tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, reg(".docker/other"), reg(name)))
		if err != nil || !bytes.Equal(got, cfg) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	bad := map[string][]byte{
		"not gzip":       []byte("plain text"),
		"not tar":        gzipOf(t, []byte(strings.Repeat("x", 1024))),
		"no config":      mk(reg(".docker/other.json")),
		"twice":          mk(reg(".docker/config.json"), reg("./.docker/config.json")),
		"symlink":        mk(tar.Header{Typeflag: tar.TypeSymlink, Name: ".docker/config.json", Linkname: "/etc/shadow"}),
		"dir not a file": mk(tar.Header{Typeflag: tar.TypeDir, Name: ".docker/config.json/", Mode: 0o700}),
	}
	for name, b := range bad {
		if got, err := ReadTarGz(b); err == nil {
			t.Errorf("%s: read %q", name, got)
		}
	}
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// TestTarGzWithRealTar: GNU tar, which the Mesos fetcher runs, extracts
// the archive to .docker/config.json 0600 in .docker/ 0700, owned by root,
// with no warning.
func TestTarGzWithRealTar(t *testing.T) {
	cfg := testConfig(t)
	a, err := TarGz(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "docker.tar.gz")
	if err := os.WriteFile(archive, a, 0o600); err != nil {
		t.Fatal(err)
	}
	sandbox := filepath.Join(dir, "sandbox")
	if err := os.Mkdir(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-C", sandbox, "-xzf", archive).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("tar -xzf: %v, output %q", err, out)
	}
	got, err := os.ReadFile(filepath.Join(sandbox, ArchiveConfigPath))
	if err != nil || !bytes.Equal(got, cfg) {
		t.Fatalf("extracted config: %q, %v", got, err)
	}
	for p, want := range map[string]os.FileMode{".docker": os.ModeDir | 0o700, ArchiveConfigPath: 0o600} {
		fi, err := os.Lstat(filepath.Join(sandbox, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", p, fi.Mode(), want)
		}
		if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
			t.Errorf("%s: owned by %d:%d, want 0:0", p, st.Uid, st.Gid)
		}
	}
}
