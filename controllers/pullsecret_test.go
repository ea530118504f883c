package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/pullsecret"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// authEnv is a node env with auth and pull credentials on, the PKI state
// in a temp dir, and a log that is kept so a test can look for secrets in it.
type authEnv struct {
	*nodeEnv
	stateDir string
	logMu    sync.Mutex
	log      strings.Builder
	pull     *PullSecret
	creds    *Credentials
}

func newAuthEnv(t *testing.T, edit func(*v1alpha1.Spec)) *authEnv {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	e := &authEnv{stateDir: dir}
	e.nodeEnv = newNodeEnv(t, func(s *v1alpha1.Spec) {
		s.TLS.StateDir = dir
		s.Registry.DNSNames = []string{"registry.example"}
		s.Registry.IPAddresses = []string{"198.18.0.10"}
		s.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{PullPasswordRotation: v1alpha1.D(time.Hour)}}
		if edit != nil {
			edit(s)
		}
	})
	if !e.spec.CredentialsEnabled() {
		t.Fatal("the test spec does not enable pull credentials")
	}
	for _, fe := range v1alpha1.Validate(&v1alpha1.Registry{Spec: *e.spec}) {
		if strings.HasPrefix(fe.Path, "spec.auth") || strings.HasPrefix(fe.Path, "spec.pullCredentials") {
			t.Fatalf("test spec invalid: %v", fe)
		}
	}
	e.deps.Log = funcr.New(func(prefix, args string) {
		e.logMu.Lock()
		defer e.logMu.Unlock()
		e.log.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
	e.store.SetFleetListed(e.clock.Now())
	e.pull = NewPullSecret(e.deps, PullSecretOptions{})
	e.creds = NewCredentials(e.deps, e.opts)
	return e
}

func (e *authEnv) reconcilePull(t *testing.T) state.PullSecret {
	t.Helper()
	if _, err := e.pull.Reconcile(context.Background(), PullSecretKey); err != nil {
		t.Fatalf("pullsecret: %v", err)
	}
	return e.store.PullSecret()
}

func (e *authEnv) reconcileCreds(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		_, err := e.creds.Reconcile(context.Background(), a)
		if err != nil && !nodes.IsUnreachable(errors.Unwrap(err)) && !nodes.IsUnreachable(err) {
			t.Fatalf("credentials on %s: %v", a, err)
		}
	}
}

// saved is the pull password state in the state directory.
func (e *authEnv) saved(t *testing.T) *pullsecret.State {
	t.Helper()
	f, err := pki.NewDirStore(e.stateDir).Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := f[pki.FilePullPassword]
	if !ok {
		return nil
	}
	s, err := pullsecret.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

func users(p state.PullSecret) string {
	var out []string
	for _, u := range p.Valid {
		out = append(out, u.Name)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// A whole rotation with a fake clock: create, distribute, rotate, wait for
// a lagging agent (overdue past the grace), let an unreachable agent not
// hold it back, and drop the old generation only after the grace.
func TestPullSecretLifecycle(t *testing.T) {
	e := newAuthEnv(t, nil)
	p := e.reconcilePull(t)
	if !p.Ready || p.Current.Name != "agents-1" || users(p) != "agents-1" || p.Current.Password.Empty() {
		t.Fatalf("created: %+v", p)
	}
	if s := e.saved(t); s == nil || s.Current.Generation != 1 || s.Current.Password != p.Current.Password {
		t.Fatalf("saved state %+v", s)
	}
	if fi, err := os.Stat(filepath.Join(e.stateDir, pki.FilePullPassword)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", pki.FilePullPassword, fi, err)
	}
	if got := testutil.ToFloat64(e.metrics.PullPasswordGeneration); got != 1 {
		t.Errorf("generation metric %v", got)
	}
	pw1 := p.Current.Password
	// A second pass, before the rotation is due, changes nothing.
	if p := e.reconcilePull(t); p.Current.Password != pw1 || users(p) != "agents-1" {
		t.Fatalf("second pass changed the password: %+v", p)
	}
	e.reconcileCreds(t, nodeA, nodeB)
	if c := e.concern(t, nodeA, reconciler.Credentials); !c.InSync || c.Hash != "1" {
		t.Fatalf("credentials on A: %+v", c)
	}

	e.clock.Step(time.Hour)
	p = e.reconcilePull(t)
	if p.Current.Name != "agents-2" || users(p) != "agents-1 agents-2" || p.Current.Password == pw1 {
		t.Fatalf("rotated: current %s users %q", p.Current.Name, users(p))
	}
	pw2 := p.Current.Password
	if PullRotationCanMove(e.store) {
		t.Fatal("a rotation can move before any agent carries the new generation")
	}
	e.reconcileCreds(t, nodeA)
	if PullRotationCanMove(e.store) {
		t.Fatal("a rotation can move while B lags")
	}
	p = e.reconcilePull(t)
	if users(p) != "agents-1 agents-2" || strings.Join(p.Lagging, " ") != nodeB || p.Overdue {
		t.Fatalf("B lagging: users %q lagging %q overdue %v", users(p), p.Lagging, p.Overdue)
	}
	e.clock.Step(10 * time.Minute) // the grace of a 1h rotation
	p = e.reconcilePull(t)
	if !p.Overdue || users(p) != "agents-1 agents-2" || testutil.ToFloat64(e.metrics.PullCredentialsOverdue) != 1 {
		t.Fatalf("B past the grace: overdue %v users %q", p.Overdue, users(p))
	}

	// B goes down: it no longer holds the rotation back, the grace starts.
	e.exec.down[nodeB] = &nodes.ConnectError{Node: nodeB, Err: errors.New("connection refused")}
	e.reconcileCreds(t, nodeB)
	if !PullRotationCanMove(e.store) {
		t.Fatal("B is unreachable and A carries generation 2, yet the rotation cannot move")
	}
	p = e.reconcilePull(t)
	if users(p) != "agents-1 agents-2" || p.Overdue || len(p.Lagging) != 0 {
		t.Fatalf("distributed: users %q overdue %v lagging %q", users(p), p.Overdue, p.Lagging)
	}
	e.clock.Step(10*time.Minute - time.Second)
	if p = e.reconcilePull(t); users(p) != "agents-1 agents-2" {
		t.Fatalf("dropped before the grace ended: %q", users(p))
	}
	e.clock.Step(time.Second)
	if p = e.reconcilePull(t); users(p) != "agents-2" || p.Current.Password != pw2 {
		t.Fatalf("after the grace: users %q", users(p))
	}
	if s := e.saved(t); s.Previous != nil || s.Current.Generation != 2 {
		t.Fatalf("saved after the drop: %+v", s)
	}
	e.logMu.Lock()
	log := e.log.String()
	e.logMu.Unlock()
	for _, pw := range []string{pw1.Reveal(), pw2.Reveal()} {
		if strings.Contains(log, pw) {
			t.Fatal("a pull password is in the log")
		}
	}
	if !strings.Contains(log, "pull password state updated") {
		t.Errorf("no log of the updates:\n%s", log)
	}
}

// A rotation must not finish while a reachable agent lacks the new
// generation, however long it lags.
func TestPullSecretWaitsForLaggingAgent(t *testing.T) {
	e := newAuthEnv(t, nil)
	e.reconcilePull(t)
	e.reconcileCreds(t, nodeA, nodeB)
	e.clock.Step(time.Hour)
	e.reconcilePull(t)
	e.node(nodeB).ro = true // B cannot take the new credentials
	e.reconcileCreds(t, nodeA)
	if _, err := e.creds.Reconcile(context.Background(), nodeB); err == nil {
		t.Fatal("a read-only agent took the credentials")
	}
	for range 5 {
		e.clock.Step(time.Hour)
		if p := e.reconcilePull(t); users(p) != "agents-1 agents-2" || !p.Overdue {
			t.Fatalf("with B lagging: users %q overdue %v", users(p), p.Overdue)
		}
	}
	if c := e.concern(t, nodeB, reconciler.Credentials); c.InSync || c.Hash != "1" {
		t.Fatalf("B's concern %+v, want out of sync carrying generation 1", c)
	}
}

// An unreadable or unusable state file is an error naming it, and it is
// left as it is: no new password replaces it.
func TestPullSecretCorruptState(t *testing.T) {
	for name, tc := range map[string]struct {
		content []byte
		mode    os.FileMode
		want    string
	}{
		"garbage":       {[]byte("{not json"), 0o600, "not valid JSON"},
		"readable":      {nil, 0o644, "mode 0644"},
		"newer version": {[]byte(`{"version": 9, "current": {}}`), 0o600, "newer than this operator's"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newAuthEnv(t, nil)
			if tc.content == nil {
				e.reconcilePull(t)
			} else {
				if err := pki.NewDirStore(e.stateDir).Save(context.Background(), pki.Files{pki.FilePullPassword: tc.content}); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(e.stateDir, "current", pki.FilePullPassword)
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(p)
			_, err := e.pull.Reconcile(context.Background(), PullSecretKey)
			if err == nil || !strings.Contains(err.Error(), pki.FilePullPassword) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %s and %q", err, pki.FilePullPassword, tc.want)
			}
			if after, _ := os.ReadFile(p); string(after) != string(before) {
				t.Fatal("the unusable state was replaced")
			}
			if ps := e.store.PullSecret(); ps.Ready || !strings.Contains(ps.Reason, pki.FilePullPassword) {
				t.Fatalf("view %+v, want not ready naming the file", ps)
			}
		})
	}
}

// Report mode makes no password and writes nothing, but says what it
// would do, and keeps saying it; no password appears in what it says.
func TestPullSecretReportMode(t *testing.T) {
	e := newAuthEnv(t, func(s *v1alpha1.Spec) { s.Reconcile.Mode = v1alpha1.ModeReport })
	p := e.reconcilePull(t)
	if _, err := os.Stat(e.stateDir); !os.IsNotExist(err) {
		t.Fatalf("report mode touched the state directory: %v", err)
	}
	if !slices.Equal(p.Pending, []string{"create pull password generation 1"}) {
		t.Fatalf("pending %q", p.Pending)
	}
	pw := p.Current.Password
	p = e.reconcilePull(t)
	if p.Current.Password != pw || len(p.Pending) != 1 {
		t.Fatalf("second report pass: same password %v, pending %q", p.Current.Password == pw, p.Pending)
	}
	if testutil.ToFloat64(e.metrics.OutOfSync.WithLabelValues(reconciler.PullSecret, PullSecretKey)) != 1 {
		t.Error("pullsecret not out of sync in report mode")
	}
	// Switching to enforce makes the real one.
	e.spec.Reconcile.Mode = v1alpha1.ModeEnforce
	p = e.reconcilePull(t)
	if s := e.saved(t); s == nil || len(p.Pending) != 0 {
		t.Fatalf("enforce after report: saved %v pending %q", s != nil, p.Pending)
	}
}

// During a rotation agents get the new generation only once the registry
// accepts it, so no agent pulls with a password the registry does not
// know yet; the old one stays what agents carry meanwhile.
func TestPullSecretWaitsForRegistry(t *testing.T) {
	e := newAuthEnv(t, nil)
	accepted := map[string]bool{}
	e.pull = NewPullSecret(e.deps, PullSecretOptions{RegistryAccepts: func(u string) bool { return accepted[u] }})
	p := e.reconcilePull(t)
	if p.Current.Name != "agents-1" {
		t.Fatalf("the first generation is held back: %+v", p.Current.Name)
	}
	accepted["agents-1"] = true
	e.reconcileCreds(t, nodeA, nodeB)
	e.clock.Step(time.Hour)
	res, err := e.pull.Reconcile(context.Background(), PullSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	p = e.store.PullSecret()
	if p.Current.Name != "agents-1" || users(p) != "agents-1 agents-2" || res.RequeueAfter == 0 {
		t.Fatalf("before the registry accepts agents-2: current %s users %q result %+v", p.Current.Name, users(p), res)
	}
	e.reconcileCreds(t, nodeA)
	if c := e.concern(t, nodeA, reconciler.Credentials); c.Hash != "1" || !c.InSync {
		t.Fatalf("A got generation 2 before the registry accepts it: %+v", c)
	}
	accepted["agents-2"] = true
	if p = e.reconcilePull(t); p.Current.Name != "agents-2" {
		t.Fatalf("after the registry accepts agents-2: current %s", p.Current.Name)
	}
	e.reconcileCreds(t, nodeA)
	if c := e.concern(t, nodeA, reconciler.Credentials); c.Hash != "2" {
		t.Fatalf("A after the registry accepts agents-2: %+v", c)
	}
}
