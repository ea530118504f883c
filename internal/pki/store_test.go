package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var errKilled = errors.New("killed")

// rotationSets returns the sets of a full CA rotation: bootstrap,
// publishing, retiring, done.
func rotationSets(t *testing.T) ([]Files, Params) {
	h := newHarness(t)
	h.g.distributed, h.g.retired = true, true
	h.pass(t0)
	sets := []Files{h.files}
	h.p.KeyAlgorithm = ECDSAP384
	for i, at := range []time.Duration{time.Hour, time.Hour + 10*time.Minute, time.Hour + 20*time.Minute} {
		pl, _ := h.pass(t0.Add(at))
		if !pl.Changes() {
			t.Fatalf("rotation step %d did nothing", i)
		}
		sets = append(sets, h.files)
	}
	return sets, h.p
}

// checkDir verifies the set in dir the way the operator and a client
// reading the stable paths would, and returns which candidate it is.
func checkDir(t *testing.T, dir string, p Params, candidates ...Files) int {
	t.Helper()
	f, err := NewDirStore(dir).Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	m, bad := Parse(f)
	if len(bad) > 0 {
		t.Fatalf("set does not parse: %v", bad)
	}
	if err := Verify(m, p.Names, t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("set does not verify: %v", err)
	}
	// Stable paths, as docker-registry and an administrator read them.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, FileServerCert), filepath.Join(dir, FileServerKey))
	if err != nil {
		t.Fatalf("stable tls.crt/tls.key: %v", err)
	}
	bundle, err := os.ReadFile(filepath.Join(dir, FileBundle))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle)
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "registry.example", CurrentTime: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatalf("stable tls.crt does not verify against stable trust-bundle.crt: %v", err)
	}
	for i, c := range candidates {
		if f.Equal(c) {
			return i
		}
	}
	t.Fatalf("set on disk is neither the old nor the new one")
	return -1
}

func TestDirStoreRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sets, p := rotationSets(t)
	s := NewDirStore(dir)
	if f, err := s.Load(context.Background()); err != nil || len(f) != 0 {
		t.Fatalf("empty store: %v %v", f, err)
	}
	for _, f := range sets {
		if err := s.Save(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		checkDir(t, dir, p, f)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %o", fi.Mode().Perm())
	}
	for _, n := range []string{FileCAKey, FileServerKey} {
		fi, _ := os.Stat(filepath.Join(dir, n))
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %o", n, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	gens := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), genPrefix) {
			gens++
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, FilePrevCACert)); gens != 1 || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old generations or links left: %d gens, prev-ca.crt: %v", gens, err)
	}
}

// TestKillAtEveryStepOfRotation stops Save before each of its steps, as a
// crash would, for every transition of a CA rotation, and checks the set
// on disk is the old or the new one and verifies; a later Save recovers.
func TestKillAtEveryStepOfRotation(t *testing.T) {
	sets, p := rotationSets(t)
	for i := 1; i < len(sets); i++ {
		old, next := sets[i-1], sets[i]
		for k := 0; ; k++ {
			dir := filepath.Join(t.TempDir(), "state")
			s := NewDirStore(dir)
			if err := s.Save(context.Background(), old); err != nil {
				t.Fatal(err)
			}
			steps, killedAt, committed := 0, "", false
			s.step = func(name string) error {
				steps++
				if steps-1 == k {
					killedAt = name
					return errKilled
				}
				committed = committed || strings.HasPrefix(name, "fsync "+dir) // runs right after the switch
				return nil
			}
			err := s.Save(context.Background(), next)
			if err == nil {
				if k == 0 {
					t.Fatal("no steps were offered to the fault hook")
				}
				checkDir(t, dir, p, next)
				t.Logf("transition %d: killed at each of %d steps", i, k)
				break
			}
			got := checkDir(t, dir, p, old, next)
			if want := map[bool]int{false: 0, true: 1}[committed || killedAt == "fsync "+dir]; got != want {
				t.Fatalf("transition %d killed at %q: on disk is set %d, want %d", i, killedAt, got, want)
			}
			s.step = nil
			if err := s.Save(context.Background(), next); err != nil {
				t.Fatalf("recovery Save after kill at %q: %v", killedAt, err)
			}
			checkDir(t, dir, p, next)
		}
	}
}

func TestDirStoreAdoptsHandWrittenFiles(t *testing.T) {
	sets, p := rotationSets(t)
	dir := t.TempDir()
	for _, n := range []string{FileCACert, FileCAKey, FileServerCert, FileServerKey} {
		if err := os.WriteFile(filepath.Join(dir, n), sets[0][n], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := NewDirStore(dir)
	f, err := s.Load(context.Background())
	if err != nil || len(f) != 4 {
		t.Fatalf("adopt: %d files, %v", len(f), err)
	}
	if err := s.Save(context.Background(), sets[0]); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, p, sets[0])
	if fi, _ := os.Lstat(filepath.Join(dir, FileCAKey)); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("hand-written ca.key was not replaced by the stable link")
	}
}

func TestDirStoreReportsReadableKeys(t *testing.T) {
	sets, _ := rotationSets(t)
	dir := t.TempDir()
	s := NewDirStore(dir)
	if err := s.Save(context.Background(), sets[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, FileCAKey), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(context.Background())
	var bad Corruption
	if !errors.As(err, &bad) || !bad.Has(FileCAKey) || !strings.Contains(err.Error(), "0644") {
		t.Fatalf("Load = %v, want corruption of ca.key naming its mode", err)
	}
}

func TestDirStoreUnwritableNamesFixAndKeepsState(t *testing.T) {
	sets, p := rotationSets(t)
	dir := t.TempDir()
	s := NewDirStore(dir)
	if err := s.Save(context.Background(), sets[0]); err != nil {
		t.Fatal(err)
	}
	// A non-directory where the next generation goes fails like a full or
	// read-only disk would, for root too.
	if err := os.WriteFile(filepath.Join(dir, "gen-2"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "gen-2"), 0o400); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(blocker, nil, 0o600)
	err := NewDirStore(filepath.Join(blocker, "state")).Save(context.Background(), sets[1])
	if err == nil || !strings.Contains(err.Error(), "writable") || !strings.Contains(err.Error(), blocker) {
		t.Fatalf("Save under a file = %v, want an error naming the path and the fix", err)
	}
	if err := s.Save(context.Background(), sets[1]); err != nil {
		t.Fatalf("a stale non-directory generation must be cleared: %v", err)
	}
	checkDir(t, dir, p, sets[1])
}

// The store never chmods or writes through a directory it did not create:
// a symlinked stateDir, one of another uid, or one others may write to is
// refused with the fix, and left exactly as it was.
func TestDirStoreRefusesForeignStateDir(t *testing.T) {
	sets, _ := rotationSets(t)
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(base, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		foreign = "/" // owned by root; an unprivileged run still checks ownership
	}
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ dir, want string }{
		"symlink":        {link, "is a symlink"},
		"other uid":      {foreign, "belongs to uid"},
		"world writable": {shared, "chmod 700"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before, err := os.Stat(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			err = NewDirStore(tc.dir).Save(context.Background(), sets[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Save in %s = %v, want an error saying %q", tc.dir, err, tc.want)
			}
			after, _ := os.Stat(tc.dir)
			if after.Mode() != before.Mode() {
				t.Errorf("mode changed %v -> %v", before.Mode(), after.Mode())
			}
			if entries, _ := os.ReadDir(tc.dir); tc.dir != "/" && len(entries) != 0 {
				t.Errorf("files written into %s: %v", tc.dir, entries)
			}
		})
	}
	// Its own existing directory is used as it is: not chmodded to 0700.
	if err := NewDirStore(real).Save(context.Background(), sets[0]); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0o755 {
		t.Errorf("an existing directory was chmodded to %04o", fi.Mode().Perm())
	}
}
