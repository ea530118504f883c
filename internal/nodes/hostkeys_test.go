package nodes

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ssh/knownhosts"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/internal/metrics"
)

// A key marked @revoked is a refused host key like a mismatch: counted, not
// retried as a connection failure, and the message says what to do.
func TestRevokedHostKey(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	ctx := context.Background()
	for _, policy := range []string{"strict", "acceptNew"} {
		e, m, _ := newExecutor(t)
		cfg := d.config("root", false)
		cfg.HostKeyPolicy = policy
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		line := "@revoked " + knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, d.HostKey) + "\n"
		must(t, os.WriteFile(cfg.KnownHostsFile, []byte(line), 0o600))
		for range 2 {
			err := e.Do(ctx, cfg, d.Addr, func(context.Context, Conn) error { return nil })
			var he *HostKeyError
			if !errors.As(err, &he) || !he.Revoked || !strings.Contains(err.Error(), "@revoked") {
				t.Fatalf("%s: got %v, want a revoked HostKeyError", policy, err)
			}
			var ce *ConnectError
			if errors.As(err, &ce) {
				t.Errorf("%s: revoked key reported as a transient connect error", policy)
			}
		}
		if v := testutil.ToFloat64(m.HostKeyMismatch.WithLabelValues(d.Addr)); v != 2 {
			t.Errorf("%s: ssh_host_key_mismatch_total = %v, want 2", policy, v)
		}
		if !e.state(d.Addr).retryAt.IsZero() {
			t.Errorf("%s: a revoked key set a backoff", policy)
		}
		if b, _ := os.ReadFile(cfg.KnownHostsFile); string(b) != line {
			t.Errorf("%s: known_hosts changed:\n%s", policy, b)
		}
	}
}

// A pass can tell that the connection it runs on took the host key on trust.
func TestAcceptedOnFirstUse(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	ctx := context.Background()
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	cfg.HostKeyPolicy = "acceptNew"
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	accepted := func() bool {
		var got bool
		must(t, e.Do(ctx, cfg, d.Addr, func(_ context.Context, c Conn) error {
			got = AcceptedOnFirstUse(c)
			return nil
		}))
		return got
	}
	if !accepted() {
		t.Fatal("first connection: key recorded on first use but AcceptedOnFirstUse is false")
	}
	if accepted() {
		t.Error("a later pass, on a new connection checked against the recorded key: AcceptedOnFirstUse is true")
	}
	var wrapped bool
	must(t, e.Do(ctx, cfg, d.Addr, func(_ context.Context, c Conn) error {
		wrapped = AcceptedOnFirstUse(Recording(c))
		return nil
	}))
	if wrapped {
		t.Error("key on record, seen through Recording: AcceptedOnFirstUse is true")
	}
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	e.Forget(d.Addr)
	must(t, e.Do(ctx, cfg, d.Addr, func(_ context.Context, c Conn) error {
		wrapped = AcceptedOnFirstUse(Recording(c))
		return nil
	}))
	if !wrapped {
		t.Error("key accepted on first use, seen through Recording: AcceptedOnFirstUse is false")
	}
	cfg.KnownHostsFile = d.KnownHosts // on record from the start
	e.Forget(d.Addr)
	if accepted() {
		t.Error("key on record: AcceptedOnFirstUse is true")
	}
}

// With acceptNew, a known_hosts the process cannot write (the Marathon app
// mounts secrets read-only) is reported on the first dial, once, naming
// the file; agents already on record still connect.
func TestAcceptNewReadOnlyKnownHosts(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	ro := filepath.Join(t.TempDir(), "known_hosts")
	b, err := os.ReadFile(d.KnownHosts)
	must(t, err)
	must(t, os.WriteFile(ro, b, 0o600))
	if out, err := exec.Command("mount", "--bind", "-o", "ro", ro, ro).CombinedOutput(); err != nil {
		t.Fatalf("read-only bind mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", ro).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", ro, err, out)
		}
	})
	if f, err := os.OpenFile(ro, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Close()
		t.Fatal("the bind mount is writable")
	}

	var mu sync.Mutex
	var logged []string
	log := funcr.New(func(_, args string) {
		mu.Lock()
		logged = append(logged, args)
		mu.Unlock()
	}, funcr.Options{})
	e := NewExecutor(metrics.New(metrics.BuildInfo{}), clocktesting.NewFakeClock(time.Now()), log)
	t.Cleanup(e.Close)
	cfg := d.config("root", false)
	cfg.HostKeyPolicy = "acceptNew"
	cfg.KnownHostsFile = ro
	for range 2 {
		e.Forget(d.Addr)
		must(t, e.Do(context.Background(), cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, l := range logged {
		if strings.Contains(l, "known_hosts is read-only: new agents cannot be accepted") && strings.Contains(l, ro) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("read-only known_hosts reported %d times, want once:\n%s", n, strings.Join(logged, "\n"))
	}

	// strict never writes known_hosts: nothing to say.
	logged = nil
	e2 := NewExecutor(metrics.New(metrics.BuildInfo{}), clocktesting.NewFakeClock(time.Now()), log)
	t.Cleanup(e2.Close)
	cfg.HostKeyPolicy = "strict"
	mu.Unlock()
	must(t, e2.Do(context.Background(), cfg, d.Addr, func(context.Context, Conn) error { return nil }))
	mu.Lock()
	if len(logged) != 0 {
		t.Errorf("strict policy logged: %q", logged)
	}
}
