package marathonsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// manualEnv is an emulator whose background loop never fires: tests move
// it with step(), so every intermediate state can be inspected.
type manualEnv struct {
	sim   *Server
	mem   *MemExec
	clock *clocktesting.FakeClock
	url   string
}

func newManual(t *testing.T, opts Options) *manualEnv {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	mem := NewMemExec()
	if opts.Executor == nil {
		opts.Executor = mem
	}
	if opts.Agents == nil {
		opts.Agents = []Agent{{Hostname: "agent-1", IP: "198.18.0.11"}, {Hostname: "agent-2", IP: "198.18.0.12"}}
	}
	opts.Clock = clk
	opts.Tick = time.Hour
	sim := New(opts)
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		sim.Close()
		hs.Close()
	})
	return &manualEnv{sim: sim, mem: mem, clock: clk, url: hs.URL}
}

func (e *manualEnv) step(n int) {
	for i := 0; i < n; i++ {
		e.clock.Step(time.Second)
		e.sim.Step()
	}
}

type resp struct {
	status int
	header http.Header
	raw    []byte
	body   any
}

func (r resp) obj() map[string]any { m, _ := r.body.(map[string]any); return m }

func do(t *testing.T, base, method, path string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out
}

func (e *manualEnv) do(t *testing.T, method, path string, body any) resp {
	t.Helper()
	return do(t, e.url, method, path, body)
}

func (e *manualEnv) app(t *testing.T, id string) map[string]any {
	t.Helper()
	r := e.do(t, "GET", "/v2/apps/"+strings.TrimPrefix(id, "/"), nil)
	if r.status != 200 {
		t.Fatalf("GET app %s: %d %s", id, r.status, r.raw)
	}
	return r.obj()["app"].(map[string]any)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// missingKeys lists keys of want (recursively into objects and the first
// array element) that got lacks, as dotted paths; skip names keys that
// Marathon 1.5+ no longer prints.
func missingKeys(want, got any, prefix string, skip map[string]bool) []string {
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{prefix + " (not an object)"}
		}
		for _, k := range keys(w) {
			p := strings.TrimPrefix(prefix+"."+k, ".")
			if skip[k] || skip[p] {
				continue
			}
			gv, ok := g[k]
			if !ok {
				out = append(out, p)
				continue
			}
			out = append(out, missingKeys(w[k], gv, p, skip)...)
		}
	case []any:
		g, ok := got.([]any)
		if ok && len(w) > 0 && len(g) > 0 {
			out = append(out, missingKeys(w[0], g[0], prefix+"[0]", skip)...)
		}
	}
	return out
}

func numAt(t *testing.T, m map[string]any, k string) int {
	t.Helper()
	f, ok := m[k].(float64)
	if !ok {
		t.Fatalf("%s is %T %v", k, m[k], m[k])
	}
	return int(f)
}
