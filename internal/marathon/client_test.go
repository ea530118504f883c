package marathon

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/internal/metrics"
)

// fake is a hand-written Marathon stand-in: handler decides each answer.
type fake struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newFake(t *testing.T, h http.HandlerFunc) *fake {
	f := &fake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const restartOK = `{"version":"2024-01-01T00:00:00.000Z","deploymentId":"dep-1"}`

// A 5xx through go-marathon must neither stick (v0.7.1 would report every
// later call as ErrMarathonDown) nor hide Marathon's answer.
func TestFiveXXDoesNotMarkHostDown(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(500)
			w.Write([]byte(`{"message":"storage timeout"}`))
			return
		}
		w.Write([]byte(restartOK))
	})
	m := metrics.New(metrics.BuildInfo{})
	c := newClient(t, Options{URLs: []string{f.srv.URL}, Metrics: m})
	_, err := c.RestartApp(context.Background(), "/registry", false)
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "storage timeout") || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("want unavailable with Marathon's message, got %v", err)
	}
	fail.Store(false)
	dep, err := c.RestartApp(context.Background(), "/registry", false)
	if err != nil || dep != "dep-1" {
		t.Fatalf("second call: %q %v", dep, err)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("want 2 requests (no /ping probe reached Marathon), got %d", n)
	}
	if got := testutil.ToFloat64(m.MarathonRequests.WithLabelValues("POST")); got != 2 {
		t.Errorf("marathon_requests_total{method=POST} = %v, want 2", got)
	}
	// go-marathon's down-member prober (cluster.healthCheckNode) must end
	// with the call instead of polling /ping every 5 s forever.
	deadline := time.Now().Add(5 * time.Second)
	for proberRunning() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if proberRunning() {
		t.Error("go-marathon's down-member prober is still running after the call")
	}
}

func proberRunning() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "healthCheckNode")
}

func TestFailoverToNextURL(t *testing.T) {
	down := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	up := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"app":{"id":"/registry","instances":1,"tasksRunning":1,"tasksHealthy":1,
			"healthChecks":[{"protocol":"TCP"}],"deployments":[{"id":"d9"}],
			"tasks":[{"id":"t1","host":"10.0.0.5","ports":[31000],"state":"TASK_RUNNING","healthCheckResults":[{"alive":true}]}]}}`))
	})
	c := newClient(t, Options{URLs: []string{down.srv.URL, up.srv.URL}})
	for range 2 {
		st, err := c.GetApp(context.Background(), "/registry")
		if err != nil {
			t.Fatal(err)
		}
		if st.TasksHealthy != 1 || st.Tasks[0].Endpoint() != "10.0.0.5:31000" || st.Deployments[0] != "d9" {
			t.Errorf("status: %+v", st)
		}
		if _, ok := st.Definition["tasks"]; ok {
			t.Error("server-managed field left in the definition")
		}
	}
	// The member that answered is tried first next time.
	if n := len(down.requests()); n != 1 {
		t.Errorf("the failing member was asked %d times, want 1", n)
	}
}

// A write that may have been applied is not repeated on another member.
func TestWriteDoesNotFailOverAfterServerError(t *testing.T) {
	first := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	second := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(restartOK)) })
	c := newClient(t, Options{URLs: []string{first.srv.URL, second.srv.URL}})
	if _, err := c.UpdateApp(context.Background(), "/registry", map[string]any{"instances": 1}, false); !IsUnavailable(err) {
		t.Fatalf("want unavailable, got %v", err)
	}
	if n := len(second.requests()); n != 0 {
		t.Errorf("PUT repeated on the second member after a 500")
	}
}

func TestTimeoutCancelsGoMarathonCall(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newClient(t, Options{URLs: []string{f.srv.URL}, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Deployments(ctx)
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("want a deadline error, got %v", err)
	}
}

func TestAuthFromFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	tok := filepath.Join(dir, "tok")
	os.WriteFile(pw, []byte("hunter2\n"), 0o600)
	os.WriteFile(tok, []byte("tok-1\n"), 0o600)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[]`)) })

	c := newClient(t, Options{URLs: []string{f.srv.URL}, Username: "admin", PasswordFile: pw})
	if _, err := c.Deployments(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:hunter2"))
	if got := f.requests()[0].Header.Get("Authorization"); got != want {
		t.Errorf("basic auth header %q, want %q", got, want)
	}

	c = newClient(t, Options{URLs: []string{f.srv.URL}, TokenFile: tok})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[1]
	if r.Header.Get("Authorization") != "token=tok-1" || r.URL.Path != "/ping" {
		t.Errorf("token request: %s %v", r.URL.Path, r.Header)
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		t.Errorf("ping must not insist on JSON (406 on Marathon 1.4.4): Accept %q", r.Header.Get("Accept"))
	}
	// A refreshed token is picked up.
	os.WriteFile(tok, []byte("tok-2"), 0o600)
	future := time.Now().Add(time.Hour)
	os.Chtimes(tok, future, future)
	if _, err := c.Deployments(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[2].Header.Get("Authorization"); got != "token=tok-2" {
		t.Errorf("after refresh: %q", got)
	}

	if _, err := New(Options{URLs: []string{f.srv.URL}, Username: "a", PasswordFile: filepath.Join(dir, "missing")}); err == nil ||
		!strings.Contains(err.Error(), "passwordFile") {
		t.Errorf("missing password file: %v", err)
	}
}

func TestCreateAndUpdateSendRawJSON(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, r.ContentLength)
		r.Body.Read(b)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		switch r.Method {
		case "POST":
			w.Header().Set("Marathon-Deployment-Id", "dep-create")
			w.WriteHeader(201)
			w.Write([]byte(`{"id":"/registry","deployments":[{"id":"dep-create"}]}`))
		case "PUT":
			if r.URL.Query().Get("force") != "true" {
				w.WriteHeader(409)
				w.Write([]byte(`{"message":"App is locked","deployments":[{"id":"dep-old"}]}`))
				return
			}
			w.Write([]byte(`{"version":"v","deploymentId":"dep-put"}`))
		}
	})
	c := newClient(t, Options{URLs: []string{f.srv.URL}})
	app := sampleApp(t)
	app.Instances = 0
	dep, err := c.CreateApp(context.Background(), app)
	if err != nil || dep != "dep-create" {
		t.Fatalf("create: %q %v", dep, err)
	}
	for _, want := range []string{`"instances":0`, `"networks":[{"mode":"container/bridge"}]`, `"hostPort":0`, `"portMappings"`} {
		if !strings.Contains(bodies[0], want) {
			t.Errorf("POST body lacks %s: %s", want, bodies[0])
		}
	}
	_, err = c.UpdateApp(context.Background(), "/registry", map[string]any{"instances": 1}, false)
	if !IsLocked(err) {
		t.Fatalf("want locked, got %v", err)
	}
	dep, err = c.UpdateApp(context.Background(), "/registry", map[string]any{"instances": 1}, true)
	if err != nil || dep != "dep-put" {
		t.Fatalf("forced update: %q %v", dep, err)
	}
}
