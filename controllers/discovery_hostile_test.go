package controllers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/nodes"
)

// hostileSlaves is what a compromised or broken master could answer: two
// good agents among pids and hostnames that are no IP address or DNS name.
var hostileSlaves = `{"slaves":[
 {"id":"ok1","pid":"slave(1)@198.18.0.21:5051","hostname":"agent-21.example","active":true},
 {"id":"ok2","pid":"slave(1)@[::ffff:198.18.0.22]:5051","hostname":"agent-22","active":true},
 {"id":"ok3","pid":"","hostname":"agent-23.example","active":true},
 {"id":"meta","pid":"slave(1)@198.18.0.31;touch /tmp/x:5051","hostname":"a","active":true},
 {"id":"subst","pid":"slave(1)@$(reboot):5051","hostname":"b","active":true},
 {"id":"dots","pid":"slave(1)@..:5051","hostname":"c","active":true},
 {"id":"path","pid":"slave(1)@../../etc:5051","hostname":"d","active":true},
 {"id":"space","pid":"slave(1)@198.18.0.32 :5051","hostname":"e","active":true},
 {"id":"newline","pid":"slave(1)@198.18.0.33:5051","hostname":"agent\nfake=1","active":true},
 {"id":"long","pid":"slave(1)@` + strings.Repeat("a", 300) + `:5051","hostname":"f","active":true},
 {"id":"label","pid":"","hostname":"` + strings.Repeat("b", 64) + `.example","active":true},
 {"id":"ip","pid":"slave(1)@198.18.0.256:5051","hostname":"g","active":true},
 {"id":"octal","pid":"slave(1)@1.2.3:5051","hostname":"h","active":true},
 {"id":"zero","pid":"slave(1)@0.0.0.0:5051","hostname":"i","active":true},
 {"id":"v6unspec","pid":"slave(1)@[::]:5051","hostname":"j","active":true},
 {"id":"zone","pid":"slave(1)@[fe80::1%eth0]:5051","hostname":"k","active":true},
 {"id":"dot","pid":"slave(1)@agent-9.example.:5051","hostname":"agent-9.example.","active":true},
 {"id":"noport","pid":"slave(1)@198.18.0.34","hostname":"l","active":true},
 {"id":"hostdot","pid":"slave(1)@198.18.0.35:5051","hostname":"agent-35.example.","active":true},
 {"id":"hyphen","pid":"slave(1)@-x.example:5051","hostname":"m","active":true},
 {"id":"under","pid":"","hostname":"a_b.example","active":true},
 {"id":"star","pid":"","hostname":"*.example","active":true}
]}`

const hostileRejected = 19

// A hostile Mesos answer never reaches the fleet: the bad agents are skipped,
// logged and counted, the good ones kept.
func TestDiscoverySkipsHostileAgents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(hostileSlaves))
	}))
	t.Cleanup(srv.Close)
	e := newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.Nodes.Mesos = &v1alpha1.MesosSpec{URL: srv.URL}
		s.Nodes.Static = nil
	})
	e.store.SetFleet(nil)
	var mu sync.Mutex
	var logged []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		logged = append(logged, args)
		mu.Unlock()
	}, funcr.Options{})
	var queued []string
	deps := e.deps
	deps.Log = log
	d := NewDiscovery(deps, DiscoveryOptions{Agents: &nodes.Discoverer{},
		Enqueue: func(r, k string) { queued = append(queued, k) }})
	if _, err := d.Reconcile(context.Background(), FleetKey); err != nil {
		t.Fatal(err)
	}
	want := []string{"198.18.0.21", "198.18.0.22", "agent-23.example"}
	if got := e.store.Addresses(); !slices.Equal(got, want) {
		t.Errorf("fleet = %q, want %q", got, want)
	}
	for _, k := range queued {
		if !slices.Contains(want, k) {
			t.Errorf("rejected agent %q enqueued", k)
		}
	}
	if n := testutil.ToFloat64(e.metrics.RejectedAgents); n != hostileRejected {
		t.Errorf("discovery_rejected_agents_total = %v, want %d", n, hostileRejected)
	}
	mu.Lock()
	defer mu.Unlock()
	skipped := 0
	for _, l := range logged {
		if strings.Contains(l, "mesos agent skipped") {
			skipped++
			if strings.Contains(l, "\n") || len(l) > 600 {
				t.Errorf("log line carries raw input: %q", l)
			}
		}
	}
	if skipped != hostileRejected {
		t.Errorf("%d skipped agents logged, want %d:\n%s", skipped, hostileRejected, strings.Join(logged, "\n"))
	}
}
