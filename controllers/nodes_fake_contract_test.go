package controllers

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"testing"

	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/nodes/nodestest"
)

// The in-memory node the node reconcilers' tests use behaves like a real
// one: it meets the same contract as the executor's connections (Run
// excepted: the fake runs no scripts, tests answer them).
func TestFakeConnContract(t *testing.T) {
	n := newFakeNode()
	n.usage = nodes.FSUsage{Size: 10 << 30, Free: 4 << 30, Avail: 3 << 30}
	do := func(ctx context.Context, fn func(context.Context, nodes.Conn) error) error {
		return fn(ctx, &fakeConn{n: n, name: nodeA})
	}
	nodestest.FSContract(t, do, &fakeDisk{n: n})
	nodestest.StatVFSContract(t, do, &fakeDisk{n: n})
}

// fakeDisk is a fakeNode seen from outside its connection.
type fakeDisk struct {
	n    *fakeNode
	dirs int
}

func (d *fakeDisk) TempDir(*testing.T) string {
	d.dirs++
	p := fmt.Sprintf("/tmp/contract%d", d.dirs)
	_ = d.MkdirAll(p)
	return p
}

func (d *fakeDisk) ReadFile(p string) ([]byte, error) {
	b, ok := d.n.files[p]
	if !ok {
		return nil, notExist(p)
	}
	return b, nil
}

func (d *fakeDisk) Perm(p string) (fs.FileMode, error) {
	if _, ok := d.n.files[p]; !ok {
		return 0, notExist(p)
	}
	return d.n.modes[p], nil
}

func (d *fakeDisk) Readlink(p string) (string, error) {
	t, ok := d.n.links[p]
	if !ok {
		return "", notExist(p)
	}
	return t, nil
}

func (d *fakeDisk) Exists(p string) bool {
	_, f := d.n.files[p]
	_, l := d.n.links[p]
	return f || l || d.n.dirs[p]
}

func (d *fakeDisk) WriteFile(p string, data []byte, perm fs.FileMode) error {
	if !d.n.dirs[path.Dir(p)] {
		return notExist(path.Dir(p))
	}
	d.n.files[p], d.n.modes[p] = append([]byte(nil), data...), perm
	return nil
}

func (d *fakeDisk) StatFS(string) (nodes.FSUsage, error) { return d.n.usage, nil }

func (d *fakeDisk) MkdirAll(p string) error {
	for ; p != "/" && p != "."; p = path.Dir(p) {
		d.n.dirs[p] = true
	}
	return nil
}
