package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func serve(t *testing.T, store *state.Store, cfg ConfigInfo, method, path string) *http.Response {
	t.Helper()
	h := newHandler(store, func() ConfigInfo { return cfg }, logr.Discard(), func() time.Time { return testNow })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", path, got)
	}
}

func TestPageMixedState(t *testing.T) {
	resp := serve(t, mixedStore(), testConfig(), http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not forbid scripts", csp)
	}
	page := body(t, resp)
	for _, frag := range []string{
		`<title>registry-operator: 8 out of sync</title>`,
		`<div class="banner bad" id="overall">Out of sync: 8 item(s) need attention.</div>`,
		`<li><strong>node <span class="mono">198.18.0.12</span></strong>: unreachable: dial tcp 198.18.0.12:22: i/o timeout</li>`,
		`<li><strong>node <span class="mono">198.18.0.14</span></strong>: not contacted yet: ssh: handshake failed: knownhosts: key mismatch</li>`,
		`<li><strong>node <span class="mono">198.18.0.13</span></strong> (trust): ca.crt differs from the trust bundle; write /etc/docker/certs.d/192.168.0.1:443/ca.crt (sha256 4f2a9c01)</li>`,
		`<p class="small">5 node(s): 2 in sync, 1 out of sync, 2 unreachable.</p>`,
		`<tr class="unreachable">` + "\n" + `<td class="mono nowrap">198.18.0.12</td>`,
		`<td class="bad"><span class="badge">unreachable</span></td>`,
		`<td class="muted"><span class="badge">in sync (last seen)</span></td>`,
		`<td class="nowrap">2026-03-10 09:00:00 UTC<span class="detail">3h 0m ago</span></td>` + "\n<td>dial tcp 198.18.0.12:22: i/o timeout</td>",
		`<td class="bad"><span class="badge">out of sync</span><span class="detail">ca.crt differs from the trust bundle; write /etc/docker/certs.d/192.168.0.1:443/ca.crt (sha256 4f2a9c01)</span></td>`,
		`<td class="ok"><span class="badge">in sync</span><span class="detail">/etc/privateregistry/certs</span></td>`,
		`<tr class="warn">` + "\n<td>server</td>",
		`<td class="nowrap">2026-03-12 14:00:00 UTC<span class="detail">expires in 2d 2h</span></td>`,
		`<td class="nowrap">2026-03-10 00:00:00 UTC<span class="detail">12h 0m ago</span></td>`,
		`<td><span class="badge">renewal due</span></td>`,
		`<tr><th>Pending</th><td class="warn"><span class="detail">renew server certificate: renewal time passed 12h ago</span></td></tr>`,
		`<td>1 / 1 / 1</td>`,
		`<td class="bad"><span class="badge">error</span></td>`,
		`<pre id="spec">marathon:`,
		`<tr><th>Config file</th><td class="mono">/etc/registry-operator/registry.yaml</td></tr>`,
		`<tr><th>Valid users</th><td class="mono">agents-5, agents-4</td></tr>`,
		`<tr><th>Agents without the current credentials</th><td class="bad mono">198.18.0.13<span class="detail">past the rotation's grace</span></td></tr>`,
	} {
		if !strings.Contains(page, frag) {
			t.Errorf("page lacks %q", frag)
		}
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("page contains a script element")
	}
}

func TestPageHealthy(t *testing.T) {
	store := healthyStore()
	store.SetContact("198.18.0.14", true, testNow, "")
	page := body(t, serve(t, store, testConfig(), http.MethodGet, "/"))
	for _, frag := range []string{
		`<title>registry-operator: in sync</title>`,
		`<div class="banner ok" id="overall">In sync: the cluster matches the spec.</div>`,
		`<p class="small">5 node(s): 5 in sync, 0 out of sync, 0 unreachable.</p>`,
		`<td><span class="badge">valid</span></td>`,
	} {
		if !strings.Contains(page, frag) {
			t.Errorf("page lacks %q", frag)
		}
	}
	if strings.Contains(page, `id="out-of-sync"`) {
		t.Error("healthy page lists out-of-sync items")
	}
}

func TestPageEscapesRemoteText(t *testing.T) {
	store := healthyStore()
	store.SetContact("198.18.0.11", false, testNow, `<script>alert("x")</script>`)
	page := body(t, serve(t, store, testConfig(), http.MethodGet, "/"))
	if strings.Contains(page, `<script>alert`) {
		t.Fatal("node error reached the page unescaped")
	}
	if !strings.Contains(page, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`) {
		t.Error("escaped node error missing from the page")
	}
}

func TestPageFollowerAndRejectedReload(t *testing.T) {
	cfg := testConfig()
	cfg.IsLeader, cfg.Leader = false, "op-2:8080"
	cfg.LastReloadError = "spec.tls.server.renewBefore: must be shorter than duration"
	page := body(t, serve(t, healthyStore(), cfg, http.MethodGet, "/"))
	for _, frag := range []string{
		`(follower; leader: <span class="mono">op-2:8080</span>)`,
		`<span class="badge">rejected</span><span class="detail">spec.tls.server.renewBefore: must be shorter than duration</span>`,
		`<li><strong>leader <span class="mono">op-1:8080</span></strong>: this instance does not reconcile, its view may be stale; ask the leader (op-2:8080)</li>`,
	} {
		if !strings.Contains(page, frag) {
			t.Errorf("page lacks %q", frag)
		}
	}
}

func TestAPIStatusGolden(t *testing.T) {
	resp := serve(t, mixedStore(), testConfig(), http.MethodGet, APIPath)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	raw := body(t, resp)
	golden(t, "status-mixed.json", []byte(raw))

	var st Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if st.InSync {
		t.Error("inSync true for a mixed cluster")
	}
	var got []string
	for _, it := range st.OutOfSync {
		got = append(got, it.Kind+" "+it.Name+" "+it.Reconciler)
	}
	want := []string{
		"reconciler certificates certificates",
		"reconciler trust trust",
		"certificate pending certificates",
		"pull password pull pullsecret",
		"node 198.18.0.12 ",
		"node 198.18.0.13 trust",
		"node 198.18.0.13 credentials",
		"node 198.18.0.14 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("outOfSync items:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(raw, "serverKey") || strings.Contains(raw, "PRIVATE KEY") {
		t.Error("status JSON carries key material")
	}
}

// The reply's buffers are reused between requests: a shorter reply after a
// longer one is exactly json.MarshalIndent's text, nothing of the longer
// one left behind.
func TestAPIStatusReusedBuffersHoldOnlyTheReply(t *testing.T) {
	store := mixedStore()
	h := newHandler(store, testConfig, logr.Discard(), func() time.Time { return testNow })
	get := func() []byte {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, APIPath, nil))
		return rec.Body.Bytes()
	}
	long := get()
	store.SetFleet(nil)
	short := get()
	if len(short) >= len(long) {
		t.Fatalf("the fleet emptied, yet the reply grew from %d to %d bytes", len(long), len(short))
	}
	want, err := json.MarshalIndent(Build(store, testConfig(), testNow), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if want = append(want, '\n'); !bytes.Equal(short, want) {
		t.Errorf("reply after a longer one:\n%s\nwant:\n%s", short, want)
	}
}

func TestAPIStatusHealthyIsInSync(t *testing.T) {
	store := healthyStore()
	store.SetContact("198.18.0.14", true, testNow, "")
	var st Status
	if err := json.Unmarshal([]byte(body(t, serve(t, store, testConfig(), http.MethodGet, APIPath))), &st); err != nil {
		t.Fatal(err)
	}
	if !st.InSync || len(st.OutOfSync) != 0 {
		t.Errorf("inSync=%v items=%v for a healthy cluster", st.InSync, st.OutOfSync)
	}
	if st.OutOfSync == nil {
		t.Error("outOfSync must be [] rather than null")
	}
}

func TestOutOfSyncRules(t *testing.T) {
	cases := []struct {
		name   string
		change func(*state.Store)
		want   string // the one item expected, "" for none
	}{
		{"app missing", func(s *state.Store) {
			s.SetApp(state.App{ID: "/registry", Desired: 1})
		}, "app /registry (app): does not exist in Marathon"},
		{"app unhealthy", func(s *state.Store) {
			s.SetApp(state.App{ID: "/registry", Exists: true, InSync: true, Desired: 2, Running: 2, Healthy: 1})
		}, "app /registry (app): 1 of 2 instances healthy"},
		{"app drift in report mode", func(s *state.Store) {
			s.SetApp(state.App{ID: "/registry", Exists: true, Desired: 1, Running: 1, Healthy: 1,
				Diff: []string{"container.docker.image: registry:2.8.2 -> registry:2.8.3"}})
		}, "app /registry (app): differs: container.docker.image: registry:2.8.2 -> registry:2.8.3"},
		{"probe failed", func(s *state.Store) {
			s.SetProbe(state.Probe{Error: "x509: certificate signed by unknown authority", Checked: testNow})
		}, "probe registry (app): x509: certificate signed by unknown authority"},
		{"probe never ran", func(s *state.Store) { s.SetProbe(state.Probe{}) }, ""},
		{"certificate not ready", func(s *state.Store) {
			p := s.PKI()
			p.Ready, p.Reason = false, "CA state unreadable"
			s.SetPKI(p)
		}, "certificate server (certificates): CA state unreadable"},
		{"certificates off: readiness is not a problem", func(s *state.Store) {
			s.UpdateReconciler(reconciler.Certificates, func(r *state.ReconcilerStatus) { r.Enabled = false })
			s.SetPKI(state.PKI{})
		}, ""},
		{"disabled reconciler's old error is ignored", func(s *state.Store) {
			s.UpdateReconciler(reconciler.Conntrack, func(r *state.ReconcilerStatus) {
				r.Enabled, r.LastResult, r.LastError = false, metrics.ResultError, "old"
			})
		}, ""},
		{"requeue is not an error", func(s *state.Store) {
			s.UpdateReconciler(reconciler.App, func(r *state.ReconcilerStatus) { r.LastResult = metrics.ResultRequeue })
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := healthyStore()
			store.SetContact("198.18.0.14", true, testNow, "")
			tc.change(store)
			st := Build(store, testConfig(), testNow)
			var got []string
			for _, it := range st.OutOfSync {
				got = append(got, it.String())
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("items %q, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("items %q, want [%q]", got, tc.want)
			}
			if st.InSync != (tc.want == "") {
				t.Errorf("inSync = %v", st.InSync)
			}
		})
	}
}

func TestHandlerRoutes(t *testing.T) {
	if r := serve(t, healthyStore(), testConfig(), http.MethodGet, "/nope"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %d, want 404", r.StatusCode)
	}
	r := serve(t, healthyStore(), testConfig(), http.MethodPost, APIPath)
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow=%q, want 405 with Allow", r.StatusCode, r.Header.Get("Allow"))
	}
	if r := serve(t, healthyStore(), testConfig(), http.MethodHead, "/"); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: %d", r.StatusCode)
	}
	h := NewHandler(state.New(), nil, logr.Discard())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No nodes known") {
		t.Errorf("empty store without config info: %d\n%s", rec.Code, rec.Body.String())
	}
}
