package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/nodes"
)

var errInjected = errors.New("injected write failure")

// failingWrites hands out connections whose WriteFile fails for the paths
// in fail, as a pass cut short by a lost connection or a full disk would.
type failingWrites struct {
	NodeExecutor
	fail map[string]bool
}

func (f *failingWrites) Do(ctx context.Context, cfg nodes.Config, node string, fn func(context.Context, nodes.Conn) error) error {
	return f.NodeExecutor.Do(ctx, cfg, node, func(ctx context.Context, c nodes.Conn) error {
		return fn(ctx, &failingConn{Conn: c, fail: f.fail})
	})
}

type failingConn struct {
	nodes.Conn
	fail map[string]bool
}

func (c *failingConn) WriteFile(ctx context.Context, p string, data []byte, perm fs.FileMode) error {
	if c.fail[p] {
		return fmt.Errorf("write %s: %w", p, errInjected)
	}
	return c.Conn.WriteFile(ctx, p, data, perm)
}

// An interrupted placement never leaves a key the operator does not know
// it owns: the marker goes down before the key.
func TestPlacementMarkerBeforeKey(t *testing.T) {
	dir := v1alpha1.DefaultCertsHostPath
	key, crt, marker := path.Join(dir, "tls.key"), path.Join(dir, "tls.crt"), path.Join(dir, placedMarker)
	ctx := context.Background()

	t.Run("key write fails", func(t *testing.T) {
		e := newNodeEnv(t, nil)
		publishBundle(e.store, "CA1")
		fw := &failingWrites{NodeExecutor: e.exec, fail: map[string]bool{key: true}}
		e.opts.Exec = fw
		r := NewPlacement(e.deps, e.opts)
		if _, err := r.Reconcile(ctx, nodeA); !errors.Is(err, errInjected) {
			t.Fatalf("got %v, want the injected failure", err)
		}
		n := e.node(nodeA)
		if _, ok := n.files[marker]; !ok {
			t.Fatal("the key write failed and no marker is there: the marker must be written before the key")
		}
		// The next pass owns the directory and repairs the key.
		delete(fw.fail, key)
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
		if string(n.files[key]) != "key-CA1" || n.modes[key] != 0o600 || string(n.files[crt]) != "chain-CA1" {
			t.Fatalf("after the repair pass: key %q mode %o, crt %q", n.files[key], n.modes[key], n.files[crt])
		}
	})

	t.Run("interrupted after the key", func(t *testing.T) {
		e := newNodeEnv(t, nil)
		publishBundle(e.store, "CA1")
		e.opts.Exec = &failingWrites{NodeExecutor: e.exec, fail: map[string]bool{crt: true}}
		r := NewPlacement(e.deps, e.opts)
		if _, err := r.Reconcile(ctx, nodeA); !errors.Is(err, errInjected) {
			t.Fatalf("got %v, want the injected failure", err)
		}
		n := e.node(nodeA)
		if string(n.files[key]) != "key-CA1" || n.modes[key] != 0o600 {
			t.Fatalf("key %q mode %o, want it placed 0600 before the failing certificate", n.files[key], n.modes[key])
		}
		// The agent stops being a candidate: the key written by the
		// interrupted pass is the operator's and leaves with the rest.
		e.spec.App.Constraints = [][]string{{"hostname", "CLUSTER", nodeB}}
		if _, err := r.Reconcile(ctx, nodeA); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{key, crt, marker} {
			if _, ok := n.files[p]; ok {
				t.Errorf("%s left on an agent that is no longer a candidate", p)
			}
		}
	})
}
