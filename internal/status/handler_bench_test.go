package status

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// discardWriter is a ResponseWriter that keeps nothing: the benchmark
// measures what the handler allocates, not a recorder's buffer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkAPIStatus1000 serves /api/status for 1000 agents in sync, as a
// monitor polls it: what each poll costs `run` in CPU and garbage.
func BenchmarkAPIStatus1000(b *testing.B) {
	s := state.New()
	nodes := make([]state.Node, 1000)
	for i := range nodes {
		nodes[i] = state.Node{Address: fmt.Sprintf("198.18.%d.%d", i/250, 2+i%250), Source: "static"}
	}
	s.SetFleet(nodes)
	for _, n := range nodes {
		s.SetContact(n.Address, true, testNow, "")
		for _, r := range []string{reconciler.Trust, reconciler.Conntrack} {
			s.SetConcern(n.Address, r, state.Concern{InSync: true, Hash: "0123456789abcdef0123456789abcdef", Checked: testNow})
		}
	}
	h := newHandler(s, testConfig, logr.Discard(), func() time.Time { return testNow })
	req := httptest.NewRequest(http.MethodGet, APIPath, nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
