package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

const good = `apiVersion: registry-operator/v1alpha1
kind: Registry
spec:
  registry: {address: "reg.example:5000"}
  tls: {stateDir: /var/lib/ro}
  reconcile: {interval: %s}
`

func spec(interval string) []byte { return []byte(strings.Replace(good, "%s", interval, 1)) }

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, path string) (*Source, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(metrics.BuildInfo{})
	s, err := Open(path, m, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func TestReloadGoodAndBadEdits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	write(t, path, spec("60s"))
	s, m := open(t, path)
	if s.Spec().Reconcile.Interval.Duration != time.Minute {
		t.Fatal("initial spec not in force")
	}
	if changed, err := s.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: changed=%v err=%v", changed, err)
	}

	write(t, path, spec("5m"))
	if changed, err := s.Reload(); !changed || err != nil {
		t.Fatalf("good edit: changed=%v err=%v", changed, err)
	}
	if s.Spec().Reconcile.Interval.Duration != 5*time.Minute {
		t.Fatal("good edit did not take effect")
	}

	write(t, path, []byte(strings.Replace(string(spec("5m")), "stateDir", "stateDirectory", 1)))
	_, err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), "spec.tls.stateDirectory") {
		t.Fatalf("bad edit must be rejected with its path, got %v", err)
	}
	if s.Spec().Reconcile.Interval.Duration != 5*time.Minute || s.Spec().TLS.StateDir != "/var/lib/ro" {
		t.Fatal("a bad edit replaced the spec in force")
	}
	if got := testutil.ToFloat64(m.ConfigReloadSuccessful); got != 0 {
		t.Errorf("config_last_reload_successful = %v after a bad edit", got)
	}
	if s.Info().LastError == "" {
		t.Error("status must show the rejected edit")
	}

	write(t, path, spec("5m")) // reverted
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.ConfigReloadSuccessful); got != 1 || s.Info().LastError != "" {
		t.Errorf("after revert: metric=%v lastError=%q", got, s.Info().LastError)
	}
}

func TestOpenRejectsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	write(t, path, []byte("kind: Registry\n"))
	if _, err := Open(path, metrics.New(metrics.BuildInfo{}), testr.New(t)); err == nil {
		t.Fatal("an invalid first config must fail")
	}
}

// waitFor polls cond; it bounds the wait but asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchSeesEveryKindOfEdit(t *testing.T) {
	dir := t.TempDir()
	// A mounted-volume layout: registry.yaml -> ..data/registry.yaml, ..data -> ..v1.
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "..v1", "registry.yaml"), spec("61s"))
	write(t, filepath.Join(dir, "..v2", "registry.yaml"), spec("62s"))
	must(t, os.Symlink("..v1", filepath.Join(dir, "..data")))
	path := filepath.Join(dir, "registry.yaml")
	must(t, os.Symlink("..data/registry.yaml", path))

	s, _ := open(t, path)
	ctx, cancel := context.WithCancel(t.Context())
	changes := make(chan struct{}, 10)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		if err := s.Watch(ctx, func() { changes <- struct{}{} }); err != nil && ctx.Err() == nil {
			t.Errorf("watch: %v", err)
		}
	}()
	// The watcher logs to t: it must have returned before the test ends
	// and its directory is removed.
	defer func() { cancel(); <-watching }()
	interval := func(want time.Duration) func() bool {
		return func() bool { return s.Spec().Reconcile.Interval.Duration == want }
	}

	// Symlink swap, the way a volume update does it.
	must(t, os.Symlink("..v2", filepath.Join(dir, "..tmp")))
	must(t, os.Rename(filepath.Join(dir, "..tmp"), filepath.Join(dir, "..data")))
	waitFor(t, "symlink swap", interval(62*time.Second))

	// Replace the link by a plain file written in place.
	must(t, os.Remove(path))
	write(t, path, spec("63s"))
	waitFor(t, "new file", interval(63*time.Second))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	_, err = f.Write(spec("64s"))
	must(t, err)
	must(t, f.Close())
	waitFor(t, "in-place write", interval(64*time.Second))

	// Atomic rename, as editors and config tools do.
	tmp := filepath.Join(dir, ".registry.yaml.tmp")
	write(t, tmp, spec("65s"))
	must(t, os.Rename(tmp, path))
	waitFor(t, "atomic rename", interval(65*time.Second))

	// A bad edit keeps 65s in force.
	write(t, path, []byte("apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec: {reconcile: {interval: often}}\n"))
	waitFor(t, "rejection", func() bool { return s.Info().LastError != "" })
	if !interval(65 * time.Second)() {
		t.Fatal("bad edit replaced the spec")
	}
	if n := len(changes); n != 4 {
		t.Errorf("onChange ran %d times, want 4 (one per good edit)", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A config file replaced by a FIFO while running is a rejected reload, not
// a reload loop blocked in open(2); the last good spec stays in force.
func TestReloadRefusesFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.yaml")
	write(t, path, spec("30s"))
	s, _ := open(t, path)
	fifo := filepath.Join(dir, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o600))
	must(t, os.Rename(fifo, path))
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	done := make(chan error, 1)
	go func() { _, err := s.Reload(); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("reload of a FIFO: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("reload hangs on a FIFO")
	}
	if got := s.Spec().Reconcile.Interval.Duration; got != 30*time.Second {
		t.Errorf("spec in force changed: interval %s", got)
	}
}

// A reload check rejects an edit like an invalid one: the spec in force
// stays, the metric and Info say why, and reverting the edit clears it.
func TestReloadCheckRejectsEdit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	write(t, path, spec("60s"))
	m := metrics.New(metrics.BuildInfo{})
	fixed := func(inForce, next *v1alpha1.Registry) error {
		if inForce.Spec.Reconcile.Interval != next.Spec.Reconcile.Interval {
			return errors.New("spec.reconcile.interval: fixed at start")
		}
		return nil
	}
	s, err := Open(path, m, testr.New(t), fixed)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, spec("5m"))
	if changed, err := s.Reload(); changed || err == nil || !strings.Contains(err.Error(), "fixed at start") {
		t.Fatalf("checked edit: changed=%v err=%v", changed, err)
	}
	if s.Spec().Reconcile.Interval.Duration != time.Minute {
		t.Error("rejected edit took effect")
	}
	if v := testutil.ToFloat64(m.ConfigReloadSuccessful); v != 0 {
		t.Errorf("config_last_reload_successful = %v after a rejected edit", v)
	}
	if in := s.Info(); !strings.Contains(in.LastError, "fixed at start") {
		t.Errorf("Info().LastError = %q", in.LastError)
	}
	write(t, path, spec("60s"))
	if _, err := s.Reload(); err != nil || s.Info().LastError != "" || testutil.ToFloat64(m.ConfigReloadSuccessful) != 1 {
		t.Errorf("reverted edit: err=%v lastError=%q", err, s.Info().LastError)
	}
}

// The poll reads the file only when its identity moved: an unchanged spec
// costs a stat a second, and an edit that keeps the size is still seen.
func TestPollReadsOnlyMovedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.yaml")
	write(t, path, spec("60s"))
	s, _ := open(t, path)
	if s.moved() {
		t.Fatal("an unchanged file reads as moved")
	}
	write(t, path, spec("90s")) // same size, new content
	if !s.moved() {
		t.Fatal("an in-place edit of the same size is not seen")
	}
	if changed, err := s.Reload(); !changed || err != nil {
		t.Fatalf("reload after the edit: changed=%v err=%v", changed, err)
	}
	if s.moved() {
		t.Fatal("the file reads as moved right after it was read")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !s.moved() {
		t.Fatal("a removed file is not seen")
	}
}
