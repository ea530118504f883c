package pki

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The certificate and pull-password parts of one directory store: each
// save keeps the other's file, each load shows only its own, and a save
// that would lose the other's unusable file is refused.
func TestSharedParts(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	var sh Shared
	certs := sh.Part(NewDirStore(dir), CertificateFiles...)
	pull := sh.Part(NewDirStore(dir), PullPasswordFiles...)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(certs.Save(ctx, Files{FileCACert: []byte("ca"), FileCAKey: []byte("key")}))
	must(pull.Save(ctx, Files{FilePullPassword: []byte("pw1")}))
	must(certs.Save(ctx, Files{FileCACert: []byte("ca2"), FileCAKey: []byte("key2")}))

	all, err := NewDirStore(dir).Load(ctx)
	must(err)
	if string(all[FilePullPassword]) != "pw1" || string(all[FileCACert]) != "ca2" {
		t.Fatalf("a certificate save lost the pull password: %q", all)
	}
	if fi, err := os.Stat(filepath.Join(dir, FilePullPassword)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pull password file: %v %v, want mode 0600", fi, err)
	}
	got, err := certs.Load(ctx)
	must(err)
	if _, ok := got[FilePullPassword]; ok || len(got) != 2 {
		t.Fatalf("certificate part shows %d files, pull password included: %v", len(got), ok)
	}
	if err := pull.Save(ctx, Files{FileCACert: []byte("x")}); err == nil {
		t.Fatal("the pull part saved a certificate file")
	}

	// Saves from both parts at once never lose the other's file.
	save := func(p Store, f Files) {
		if err := p.Save(ctx, f); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { save(pull, Files{FilePullPassword: []byte("pw" + strconv.Itoa(i))}) })
		wg.Go(func() { save(certs, Files{FileCACert: []byte("ca" + strconv.Itoa(i)), FileCAKey: []byte("k")}) })
	}
	wg.Wait()
	all, err = NewDirStore(dir).Load(ctx)
	must(err)
	if !strings.HasPrefix(string(all[FilePullPassword]), "pw") || !strings.HasPrefix(string(all[FileCACert]), "ca") {
		t.Fatalf("after concurrent saves: %q", all)
	}

	// A pull password readable by others is the pull part's corruption
	// only; the certificate part loads, but will not save it away.
	must(os.Chmod(filepath.Join(dir, "current", FilePullPassword), 0o644))
	if _, err := certs.Load(ctx); err != nil {
		t.Fatalf("certificate load fails for the pull password's mode: %v", err)
	}
	if _, err := pull.Load(ctx); err == nil || !strings.Contains(err.Error(), FilePullPassword) {
		t.Fatalf("pull load: %v, want corruption naming %s", err, FilePullPassword)
	}
	err = certs.Save(ctx, Files{FileCACert: []byte("ca3"), FileCAKey: []byte("k")})
	if err == nil || !strings.Contains(err.Error(), FilePullPassword) {
		t.Fatalf("certificate save over an unusable pull password: %v, want a refusal naming it", err)
	}
}

func TestRecordingStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	rec := Recording(NewDirStore(dir))
	if err := rec.Save(ctx, Files{FilePullPassword: []byte("pw")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a recorded save touched %s: %v", dir, err)
	}
	if f, err := rec.Load(ctx); err != nil || string(f[FilePullPassword]) != "pw" {
		t.Fatalf("load after a recorded save: %q %v", f, err)
	}
	if r := rec.Recorded(); len(r) != 1 || strings.Contains(r[0], "pw\"") {
		t.Fatalf("recorded %q", r)
	}
}
