package status

import (
	"time"

	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const testSpec = `marathon:
  urls: [http://marathon.mesos:8080]
nodes:
  static: [198.18.0.11, 198.18.0.12, 198.18.0.13, 198.18.0.14, 198.18.0.15]
registry:
  address: 192.168.0.1:443
reconcile:
  interval: 1m0s
  mode: enforce
`

func testConfig() ConfigInfo {
	return ConfigInfo{
		Path:     "/etc/registry-operator/registry.yaml",
		SpecYAML: testSpec,
		LoadedAt: testNow.Add(-2 * time.Hour),
		Mode:     "enforce",
		Instance: "op-1:8080",
		Leader:   "op-1:8080",
		IsLeader: true,
		Version:  "0.1.0",
	}
}

// mixedStore is a cluster partly broken: two nodes unreachable (one never
// reached), one with trust drift, a server certificate past its renewal time
// two days before expiry, and the trust reconciler failing.
func mixedStore() *state.Store {
	s := healthyStore()
	s.UpdateReconciler(reconciler.Trust, func(r *state.ReconcilerStatus) {
		r.LastResult, r.LastError = metrics.ResultError, "198.18.0.12: dial tcp 198.18.0.12:22: i/o timeout"
		r.LastRun = testNow.Add(-20 * time.Second)
		r.LastSuccess = testNow.Add(-3 * time.Hour)
	})
	s.UpdateReconciler(reconciler.Certificates, func(r *state.ReconcilerStatus) {
		r.LastResult, r.LastError = metrics.ResultError, "renew server certificate: write /var/lib/registry-operator/server.crt: read-only file system"
		r.LastSuccess = testNow.Add(-12 * time.Hour)
	})
	p := s.PKI()
	p.Server.NotAfter = testNow.Add(50 * time.Hour)
	p.Server.RenewalTime = testNow.Add(-12 * time.Hour)
	p.Pending = []string{"renew server certificate: renewal time passed 12h ago"}
	s.SetPKI(p)

	s.SetContact("198.18.0.12", false, testNow.Add(-time.Minute), "dial tcp 198.18.0.12:22: i/o timeout")
	s.SetContact("198.18.0.14", false, time.Time{}, "ssh: handshake failed: knownhosts: key mismatch")
	// The SetContact above keeps LastContact of .12 from the healthy pass:
	// it last answered 3 hours ago.
	s.SetConcern("198.18.0.13", reconciler.Trust, state.Concern{
		InSync:  false,
		Detail:  "ca.crt differs from the trust bundle",
		Changes: []string{"write /etc/docker/certs.d/192.168.0.1:443/ca.crt (sha256 4f2a9c01)"},
		Checked: testNow.Add(-40 * time.Second),
	})
	// A pull password rotation that .13 has not followed, past the grace.
	s.SetConcern("198.18.0.13", reconciler.Credentials, state.Concern{
		InSync:  false,
		Detail:  "/root/.docker/config.json left untouched: existing docker config cannot be read: the file is not valid JSON (syntax error near byte 12); repair or remove it by hand",
		Hash:    "4",
		Changes: []string{"update /etc/docker.tar.gz (pull credentials generation 4 -> 5, mode 600)"},
		Checked: testNow.Add(-40 * time.Second),
	})
	cur := state.PullUser{Name: "agents-5", Generation: 5, Password: "fixture-new-pull-password-never-shown"}
	prev := state.PullUser{Name: "agents-4", Generation: 4, Password: "fixture-pull-password-never-shown"}
	s.SetPullSecret(state.PullSecret{Ready: true, Current: cur, Valid: []state.PullUser{cur, prev},
		NextRotation: testNow.Add(30 * 24 * time.Hour), Phase: "1 agent(s) do not carry generation 5 yet",
		Lagging: []string{"198.18.0.13"}, Overdue: true})
	// A garbage-collection window waiting for the registry to refuse uploads.
	s.SetMaintenance(state.Maintenance{Schedule: "0 3 * * 0", Next: testNow.Add(-2 * time.Minute),
		Status:     "garbage collection gc-20260310T115800Z: waiting until the registry refuses uploads",
		WindowOpen: true, RunID: "gc-20260310T115800Z", DataAgent: "198.18.0.11",
		LastRun: testNow.Add(-7 * 24 * time.Hour), LastResult: "success", LastFreedBytes: 3 << 30,
		StorageUsed: 850 << 30, StorageFree: 150 << 30, StorageSize: 1000 << 30, StorageAt: testNow.Add(-time.Minute)})
	return s
}

func healthyStore() *state.Store {
	s := state.New()
	for _, r := range reconciler.All() {
		s.UpdateReconciler(r, func(rs *state.ReconcilerStatus) {
			rs.Enabled = true
			rs.LastResult = metrics.ResultSuccess
			rs.LastRun = testNow.Add(-30 * time.Second)
			rs.LastSuccess = testNow.Add(-30 * time.Second)
		})
	}
	s.SetPKI(state.PKI{
		Ready:      true,
		Mode:       "selfSigned",
		BundleHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		ServerHash: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
		Generation: 3,
		Server: state.CertInfo{
			Subject:     "CN=192.168.0.1",
			Issuer:      "CN=registry-operator CA",
			Serial:      "5c1e0a7d3b9f42e88d6a1f0c7b2e9d41",
			NotBefore:   testNow.Add(-40 * 24 * time.Hour),
			NotAfter:    testNow.Add(50 * 24 * time.Hour),
			RenewalTime: testNow.Add(20 * 24 * time.Hour),
			DNSNames:    []string{"registry.marathon.l4lb.thisdcos.directory"},
			IPAddresses: []string{"192.168.0.1"},
		},
		CAs: []state.CertInfo{{
			Subject:     "CN=registry-operator CA",
			Issuer:      "CN=registry-operator CA",
			Serial:      "01",
			NotBefore:   testNow.Add(-400 * 24 * time.Hour),
			NotAfter:    testNow.Add(3250 * 24 * time.Hour),
			RenewalTime: testNow.Add(2885 * 24 * time.Hour),
		}},
	})
	var fleet []state.Node
	for _, a := range []string{"198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.15"} {
		fleet = append(fleet, state.Node{Address: a, Source: "static"})
	}
	s.SetFleet(fleet)
	for i, n := range fleet {
		if n.Address == "198.18.0.14" {
			continue // joined after the last pass
		}
		at := testNow.Add(-time.Duration(i+1) * 10 * time.Second)
		if n.Address == "198.18.0.12" {
			at = testNow.Add(-3 * time.Hour)
		}
		s.SetContact(n.Address, true, at, "")
		s.SetConcern(n.Address, reconciler.Trust, state.Concern{InSync: true, Hash: "9f86d081", Checked: at})
		s.SetConcern(n.Address, reconciler.Conntrack, state.Concern{InSync: true, Detail: "nf_conntrack_tcp_be_liberal=1", Checked: at})
		s.SetConcern(n.Address, reconciler.Credentials, state.Concern{InSync: true, Hash: "4", Checked: at})
	}
	pull := state.PullUser{Name: "agents-4", Generation: 4, Password: "fixture-pull-password-never-shown"}
	s.SetPullSecret(state.PullSecret{Ready: true, Current: pull, Valid: []state.PullUser{pull},
		NextRotation: testNow.Add(20 * 24 * time.Hour), Phase: "generation 4 is current until 2026-03-30T12:00:00Z"})
	s.SetConcern("198.18.0.15", reconciler.Placement, state.Concern{InSync: true, Detail: "/etc/privateregistry/certs", Checked: testNow})
	s.SetApp(state.App{
		ID: "/registry", Exists: true, InSync: true, Desired: 1, Running: 1, Healthy: 1,
		Version: "2026-03-01T10:00:00.000Z", Hosts: []string{"198.18.0.15"},
		ServedSerial: "5c1e0a7d3b9f42e88d6a1f0c7b2e9d41", Checked: testNow.Add(-20 * time.Second),
		RestartedForGeneration: 3,
	})
	s.SetProbe(state.Probe{Success: true, Duration: 23 * time.Millisecond,
		Serial: "5c1e0a7d3b9f42e88d6a1f0c7b2e9d41", Checked: testNow.Add(-20 * time.Second)})
	return s
}
