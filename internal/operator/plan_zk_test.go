package operator

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/registry-operator/registry-operator/internal/testing/zkserver"
)

// With stateStore zookeeper the certificates live in ZooKeeper, not in
// tls.stateDir: plan must read them there (without joining the election)
// and find them in sync, where it would otherwise report them as missing.
func TestPlanReadsZooKeeperPKIStore(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper")
	}
	z := zkserver.Start(t)
	dir := t.TempDir()
	digest := filepath.Join(dir, "zk-digest")
	if err := os.WriteFile(digest, []byte("operator:plan-test-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "registry.yaml")
	spec := fmt.Sprintf(`apiVersion: registry-operator/v1alpha1
kind: Registry
metadata: {name: registry}
spec:
  registry: {address: "registry.example:5000", ipAddresses: [127.0.0.1]}
  tls: {stateDir: %s}
  leaderElection:
    zookeeper: [%q]
    path: /plan-test/leader
    sessionTimeout: 4s
    stateStore: zookeeper
    digestFile: %s
`, stateDir, z.Addr(), digest)
	if err := os.WriteFile(cfg, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{ConfigPath: cfg, Timeout: time.Minute, Grace: time.Second, Version: "test", Log: bufferLog(t)}

	// Issue the certificates the way a running leader does.
	run := opts
	run.Once = true
	o, err := New(run)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Run(context.Background()); err != nil {
		t.Fatalf("run --once: %v", err)
	}

	var out bytes.Buffer
	if err := Plan(context.Background(), opts, &out); err != nil {
		t.Fatalf("plan: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "= in sync (server serial") {
		t.Errorf("plan does not show the certificates in ZooKeeper as in sync:\n%s", out.String())
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("tls.stateDir %s was created or used with stateStore zookeeper (stat: %v)", stateDir, err)
	}
}

// bufferLog keeps log lines and shows them if the test fails: the
// ZooKeeper client's goroutines may log after the test ends, which t.Log
// does not allow.
func bufferLog(t *testing.T) logr.Logger {
	var mu sync.Mutex
	var b strings.Builder
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("log:\n%s", logbuf.Tail(b.String(), 12000))
		}
	})
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&b, "%s %s\n", prefix, args)
	}, funcr.Options{})
}
