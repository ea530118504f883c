package controllers

import (
	"context"
	"fmt"
	"io/fs"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/reconciler"
)

// steadyFleet is a fleet of fake agents brought in sync by every node
// reconciler the spec turns on, for measuring the passes that follow.
type steadyFleet struct {
	env   *nodeEnv
	addrs []string
	recs  []manager.Reconciler
	names []string // the reconcilers' names, in recs' order
	// files are the operator-side files NodeOptions.ReadFile serves;
	// reads counts its calls, by path.
	mu    sync.Mutex
	files map[string]string
	reads map[string]int
}

// newSteadyFleet builds n agents (198.18.x.y). full turns on placement
// (registry and mirror, each a candidate on two agents), auth and pull
// credentials besides trust and conntrack.
func newSteadyFleet(tb testing.TB, n int, full bool) *steadyFleet {
	tb.Helper()
	var static []string
	for i := range n {
		static = append(static, fmt.Sprintf("198.18.%d.%d", 1+i/250, 1+i%250))
	}
	f := &steadyFleet{addrs: static, reads: map[string]int{}, files: map[string]string{
		"/run/registry/http-secret": "a-random-http-secret\n",
		"/run/registry/ci.password": "ci-password\n",
		"/run/registry/hub-user":    "hub-user\n",
		"/run/registry/hub-pass":    "hub-password\n",
	}}
	f.env = newNodeEnv(tb, func(s *v1alpha1.Spec) {
		s.Nodes.Static = static
		if !full {
			return
		}
		s.App.Constraints = [][]string{{"hostname", "LIKE", `198\.18\.1\.(1|2)`}}
		s.App.HTTPSecretFile = "/run/registry/http-secret"
		s.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{
			Users: []v1alpha1.HtpasswdUser{{Name: "ci", PasswordFile: "/run/registry/ci.password"}}}}
		s.PullCredentials = &v1alpha1.PullCredentialsSpec{MesosDockerConfig: ptrTo(mesosDockerConfig)}
		s.Mirror = &v1alpha1.MirrorSpec{Address: "mirror.test:5001", RemoteUsernameFile: "/run/registry/hub-user",
			RemotePasswordFile: "/run/registry/hub-pass", Constraints: [][]string{{"hostname", "LIKE", `198\.18\.1\.(3|4)`}}}
	})
	f.env.opts.HtpasswdCost = bcrypt.MinCost
	f.env.opts.ReadFile = f.readFile
	publishBundle(f.env.store, "CA1")
	if full {
		publishPull(f.env.store, 1)
	}
	f.recs = []manager.Reconciler{NewTrust(f.env.deps, f.env.opts), NewConntrack(f.env.deps, f.env.opts)}
	f.names = []string{reconciler.Trust, reconciler.Conntrack}
	if full {
		f.recs = append(f.recs, NewPlacement(f.env.deps, f.env.opts), NewCredentials(f.env.deps, f.env.opts))
		f.names = append(f.names, reconciler.Placement, reconciler.Credentials)
	}
	for _, a := range static {
		f.env.node(a).files[BeLiberalPath] = []byte("1\n")
	}
	// The first round writes, the second finds it written; the ones
	// measured find everything in sync.
	f.pass(tb)
	f.pass(tb)
	return f
}

func (f *steadyFleet) readFile(p string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[p]++
	if s, ok := f.files[p]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

// takeReads returns the ReadFile calls counted so far, and starts over.
func (f *steadyFleet) takeReads() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reads
	f.reads = map[string]int{}
	return r
}

// pass runs every reconciler once on every node, as one resync round does.
func (f *steadyFleet) pass(tb testing.TB) { f.round(tb, f.recs...) }

// round runs recs once on every node.
func (f *steadyFleet) round(tb testing.TB, recs ...manager.Reconciler) {
	ctx := context.Background()
	for _, a := range f.addrs {
		for _, r := range recs {
			if _, err := r.Reconcile(ctx, a); err != nil {
				tb.Fatalf("%s: %v", a, err)
			}
		}
	}
}

// BenchmarkSteadyStatePass measures the operator's own work in a resync
// round over 1000 agents that are all in sync: one op is one round (every
// node reconciler on every node), on fake connections, so what it counts is
// the reconcilers, the store and the metrics, not SSH. ns/node and
// allocs/node are per agent and round.
func BenchmarkSteadyStatePass(b *testing.B) {
	const n = 1000
	for _, bc := range []struct {
		name string
		full bool
	}{{"trust+conntrack", false}, {"all", true}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newSteadyFleet(b, n, bc.full)
			for _, a := range f.addrs {
				for _, r := range f.names {
					if c := f.env.concern(b, a, r); !c.InSync || len(c.Changes) > 0 {
						b.Fatalf("%s %s not in sync before the measured rounds: %+v", a, r, c)
					}
				}
			}
			b.ReportAllocs()
			var before, after runtime.MemStats
			f.takeReads()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range b.N {
				f.pass(b)
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			per := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/node")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/per, "allocs/node")
			reads := 0
			for _, n := range f.takeReads() {
				reads += n
			}
			b.ReportMetric(float64(reads)/float64(b.N), "readfiles/op")
		})
	}
}
