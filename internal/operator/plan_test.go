package operator

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// mixedStore is a cluster in a mixed state: a cert to renew, one node with
// changes, one unreachable, one in sync, an app to update and one missing.
func mixedStore() *state.Store {
	s := state.New()
	s.SetPKI(state.PKI{Mode: "selfSigned", Ready: true, BundleHash: "b1", ServerHash: "s1",
		Server:  state.CertInfo{Serial: "0A1B", NotAfter: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)},
		Pending: []string{"renew server certificate: renewal time 2026-11-20T00:00:00Z has passed"}})
	s.SetFleet([]state.Node{{Address: "198.18.0.2", Source: "mesos"}, {Address: "198.18.0.3", Source: "mesos"},
		{Address: "198.18.0.4", Source: "static"}})
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	s.SetContact("198.18.0.2", true, at, "")
	s.SetConcern("198.18.0.2", reconciler.Trust, state.Concern{Changes: []string{"create /etc/docker/certs.d/198.18.0.2:5000/ca.crt (sha256 ab12cd34)"}})
	s.SetConcern("198.18.0.2", reconciler.Conntrack, state.Concern{Changes: []string{"sysctl net.netfilter.nf_conntrack_tcp_be_liberal 0 -> 1"}})
	s.SetContact("198.18.0.3", false, at, "dial tcp 198.18.0.3:22: connect: connection refused")
	s.SetContact("198.18.0.4", true, at, "")
	s.SetConcern("198.18.0.4", reconciler.Trust, state.Concern{InSync: true})
	s.SetApp(state.App{ID: "/registry", Exists: true, Desired: 1, Diff: []string{"instances: 0 -> 1", "container.docker.image: registry:2 -> registry:2.8.3"}})
	s.SetApp(state.App{ID: "/registry-ui", Exists: false})
	return s
}

func TestRenderPlanGolden(t *testing.T) {
	r, err := v1alpha1.Load("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n := RenderPlan(&buf, r, mixedStore(), []string{"discovery fleet: GET http://leader.mesos:5050/master/slaves: no such host"})
	if n != 6 {
		t.Errorf("counted %d changes, want 6", n)
	}
	golden := filepath.Join("testdata", "plan.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("plan differs from %s (rerun with -update after checking):\n%s", golden, buf.String())
	}
}

func BenchmarkRenderPlan(b *testing.B) {
	r, err := v1alpha1.Load("../../config/samples/registry.yaml")
	if err != nil {
		b.Fatal(err)
	}
	s := mixedStore()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		RenderPlan(&buf, r, s, nil)
	}
}

func TestOutOfSync(t *testing.T) {
	got := OutOfSync(mixedStore())
	want := map[string]bool{
		"node 198.18.0.2: conntrack out of sync": true, "node 198.18.0.2: trust out of sync": true,
		"node 198.18.0.3: unreachable: dial tcp 198.18.0.3:22: connect: connection refused": true,
		"app /registry: out of sync": true, "app /registry-ui: out of sync": true,
	}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected %q", g)
		}
	}
}
