package operator

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// planStore is what a report-mode pass over n agents leaves: every tenth
// node with pending changes, one unreachable.
func planStore(b *testing.B, n int) (*v1alpha1.Registry, *state.Store) {
	b.Helper()
	raw, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var reg v1alpha1.Registry
	if err := yaml.Unmarshal(raw, &reg); err != nil {
		b.Fatal(err)
	}
	v1alpha1.Default(&reg)
	s := state.New()
	nodes := make([]state.Node, n)
	for i := range nodes {
		nodes[i] = state.Node{Address: fmt.Sprintf("198.18.%d.%d", i/250, i%250+2), Source: "static"}
	}
	s.SetFleet(nodes)
	now := time.Now()
	for i, nd := range nodes {
		if i == 1 {
			s.SetContact(nd.Address, false, now, "dial tcp: i/o timeout")
			continue
		}
		s.SetContact(nd.Address, true, now, "")
		trust := state.Concern{InSync: true, Hash: "9f86d081", Checked: now}
		ct := state.Concern{InSync: true, Checked: now}
		if i%10 == 0 {
			trust = state.Concern{Changes: []string{"update /etc/docker/certs.d/192.168.0.1:443/ca.crt: sha256 0123456789ab.. -> 9f86d0818884.."}, Checked: now}
			ct = state.Concern{Changes: []string{"sysctl net.netfilter.nf_conntrack_tcp_be_liberal 0 -> 1"}, Checked: now}
		}
		s.SetConcern(nd.Address, reconciler.Trust, trust)
		s.SetConcern(nd.Address, reconciler.Conntrack, ct)
	}
	return &reg, s
}

// BenchmarkRenderPlanFleet: `registry-operator plan` output for 100 and 1000 agents.
func BenchmarkRenderPlanFleet(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			reg, s := planStore(b, n)
			want := 2 * ((n + 9) / 10)
			if got := RenderPlan(io.Discard, reg, s, nil); got != want {
				b.Fatalf("RenderPlan counted %d changes, want %d", got, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				RenderPlan(io.Discard, reg, s, nil)
			}
		})
	}
}
