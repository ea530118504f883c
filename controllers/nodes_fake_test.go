package controllers

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/state"
)

// fakeNode is an in-memory node file system.
type fakeNode struct {
	files  map[string][]byte
	modes  map[string]fs.FileMode
	dirs   map[string]bool
	links  map[string]string
	writes int
	ro     bool
	// run, when set, answers Run; runs records every script run.
	run  func(script string, args []string) ([]byte, error)
	runs []string
	// usage is what StatVFS answers for every path that exists.
	usage nodes.FSUsage
	// acceptedNew: connections to this node took its host key on first
	// use (nodes.AcceptedOnFirstUse), as acceptNew does for a new agent.
	acceptedNew bool
}

func newFakeNode() *fakeNode {
	return &fakeNode{files: map[string][]byte{}, modes: map[string]fs.FileMode{}, dirs: map[string]bool{"/": true},
		links: map[string]string{}}
}

// fakeExec hands out fakeNodes; a node with an error in down is unreachable.
type fakeExec struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
	down  map[string]error
}

func (f *fakeExec) Do(ctx context.Context, _ nodes.Config, node string, fn func(context.Context, nodes.Conn) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.down[node]; err != nil {
		return err
	}
	n, ok := f.nodes[node]
	if !ok {
		n = newFakeNode()
		f.nodes[node] = n
	}
	return fn(ctx, &fakeConn{n: n, name: node})
}

type fakeConn struct {
	n    *fakeNode
	name string
}

func notExist(p string) error { return &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist} }

func (c *fakeConn) Node() string { return c.name }

// HostKeyAcceptedOnFirstUse implements nodes.FirstUseReporter.
func (c *fakeConn) HostKeyAcceptedOnFirstUse() bool { return c.n.acceptedNew }
func (c *fakeConn) ReadFile(_ context.Context, p string) ([]byte, fs.FileMode, error) {
	b, ok := c.n.files[p]
	if !ok {
		return nil, 0, notExist(p)
	}
	return append([]byte(nil), b...), c.n.modes[p], nil
}
func (c *fakeConn) Stat(_ context.Context, p string) (nodes.FileInfo, error) {
	if c.n.dirs[p] {
		return nodes.FileInfo{Name: path.Base(p), IsDir: true, Mode: 0o755}, nil
	}
	if _, ok := c.n.files[p]; ok {
		return nodes.FileInfo{Name: path.Base(p), Mode: c.n.modes[p]}, nil
	}
	if _, ok := c.n.links[p]; ok {
		return nodes.FileInfo{Name: path.Base(p), IsLink: true, Mode: 0o777}, nil
	}
	return nodes.FileInfo{}, notExist(p)
}
func (c *fakeConn) ReadDir(_ context.Context, dir string) ([]nodes.FileInfo, error) {
	if !c.n.dirs[dir] {
		return nil, notExist(dir)
	}
	var out []nodes.FileInfo
	for d := range c.n.dirs {
		if d != dir && path.Dir(d) == dir {
			out = append(out, nodes.FileInfo{Name: path.Base(d), IsDir: true})
		}
	}
	for f := range c.n.files {
		if path.Dir(f) == dir {
			out = append(out, nodes.FileInfo{Name: path.Base(f), Mode: c.n.modes[f]})
		}
	}
	for l := range c.n.links {
		if path.Dir(l) == dir {
			out = append(out, nodes.FileInfo{Name: path.Base(l), IsLink: true, Mode: 0o777})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
func (c *fakeConn) WriteFile(_ context.Context, p string, data []byte, perm fs.FileMode) error {
	if c.n.ro {
		return fmt.Errorf("write %s: read-only file system", p)
	}
	for d := path.Dir(p); !c.n.dirs[d]; d = path.Dir(d) {
		c.n.dirs[d] = true
	}
	c.n.files[p], c.n.modes[p] = append([]byte(nil), data...), perm
	c.n.writes++
	return nil
}
func (c *fakeConn) WriteInPlace(_ context.Context, p string, data []byte) error {
	if _, ok := c.n.files[p]; !ok {
		return notExist(p)
	}
	c.n.files[p] = append([]byte(nil), data...)
	c.n.writes++
	return nil
}
func (c *fakeConn) Chmod(_ context.Context, p string, perm fs.FileMode) error {
	c.n.modes[p] = perm
	c.n.writes++
	return nil
}
func (c *fakeConn) Remove(_ context.Context, p string) error {
	if _, ok := c.n.links[p]; ok {
		delete(c.n.links, p)
		c.n.writes++
		return nil
	}
	if _, ok := c.n.files[p]; ok {
		delete(c.n.files, p)
		c.n.writes++
		return nil
	}
	if c.n.dirs[p] {
		for f := range c.n.files {
			if strings.HasPrefix(f, p+"/") {
				return fmt.Errorf("remove %s: directory not empty", p)
			}
		}
		delete(c.n.dirs, p)
		c.n.writes++
		return nil
	}
	return notExist(p)
}
func (c *fakeConn) Symlink(_ context.Context, target, link string) error {
	if c.n.ro {
		return fmt.Errorf("symlink %s: read-only file system", link)
	}
	if !c.n.dirs[path.Dir(link)] {
		return notExist(path.Dir(link))
	}
	if _, ok := c.n.files[link]; ok {
		return fmt.Errorf("symlink %s: fake replaces only links", link)
	}
	c.n.links[link] = target
	c.n.writes++
	return nil
}
func (c *fakeConn) Readlink(_ context.Context, p string) (string, error) {
	t, ok := c.n.links[p]
	if !ok {
		return "", notExist(p)
	}
	return t, nil
}
func (c *fakeConn) StatVFS(_ context.Context, p string) (nodes.FSUsage, error) {
	_, f := c.n.files[p]
	if !f && !c.n.dirs[p] {
		return nodes.FSUsage{}, notExist(p)
	}
	return c.n.usage, nil
}
func (c *fakeConn) Run(_ context.Context, script string, args ...string) ([]byte, error) {
	if c.n.run == nil {
		return nil, fmt.Errorf("fake node runs no commands")
	}
	c.n.runs = append(c.n.runs, script)
	return c.n.run(script, args)
}

// nodeEnv wires the node reconcilers to fakes.
type nodeEnv struct {
	spec    *v1alpha1.Spec
	store   *state.Store
	metrics *metrics.Metrics
	clock   *clocktesting.FakeClock
	exec    *fakeExec
	deps    Deps
	opts    NodeOptions
}

func newNodeEnv(t testing.TB, edit func(*v1alpha1.Spec)) *nodeEnv {
	t.Helper()
	reg := &v1alpha1.Registry{Spec: v1alpha1.Spec{
		Nodes:     &v1alpha1.NodesSpec{Static: []string{"198.18.0.11", "198.18.0.12"}},
		Registry:  &v1alpha1.RegistryEndpoint{Address: "registry.test:5000"},
		TLS:       &v1alpha1.TLSSpec{},
		Trust:     &v1alpha1.TrustSpec{Runtimes: []string{v1alpha1.RuntimeDocker}},
		Conntrack: &v1alpha1.ConntrackSpec{},
		Marathon:  &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:1"}},
		App:       &v1alpha1.AppSpec{},
	}}
	if edit != nil {
		edit(&reg.Spec)
	}
	v1alpha1.Default(reg)
	e := &nodeEnv{spec: &reg.Spec, store: state.New(), metrics: metrics.New(metrics.BuildInfo{}),
		clock: clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		exec:  &fakeExec{nodes: map[string]*fakeNode{}, down: map[string]error{}}}
	e.deps = Deps{Spec: func() *v1alpha1.Spec { return e.spec }, Store: e.store, Metrics: e.metrics,
		Clock: e.clock, Log: logr.Discard()}
	e.opts = NodeOptions{Exec: e.exec}
	var fleet []state.Node
	for _, a := range nodes.Static(e.spec.Nodes.Static) {
		fleet = append(fleet, state.Node{Address: a.Address, Hostname: a.Hostname, Source: a.Source})
	}
	e.store.SetFleet(fleet)
	return e
}

func (e *nodeEnv) node(addr string) *fakeNode {
	e.exec.mu.Lock()
	defer e.exec.mu.Unlock()
	n, ok := e.exec.nodes[addr]
	if !ok {
		n = newFakeNode()
		e.exec.nodes[addr] = n
	}
	return n
}

func (e *nodeEnv) concern(t testing.TB, addr, reconciler string) state.Concern {
	t.Helper()
	n, ok := e.store.Node(addr)
	if !ok {
		t.Fatalf("node %s not in the store", addr)
	}
	return n.Concerns[reconciler]
}
