package operator

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/controllers"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// A report-mode pass of the pullsecret reconciler makes the plan say it
// would create the pull password, shows no password, and writes nothing.
func TestPlanPullPassword(t *testing.T) {
	r, err := v1alpha1.Load("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	r.Spec.TLS.StateDir = dir
	r.Spec.UI = nil
	r.Spec.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{}}
	r.Spec.Reconcile.Mode = v1alpha1.ModeReport
	v1alpha1.Default(r)
	store := state.New()
	deps := controllers.Deps{Spec: func() *v1alpha1.Spec { return &r.Spec }, Store: store, Metrics: metrics.New(metrics.BuildInfo{}),
		Clock: clocktesting.NewFakeClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)), Log: logr.Discard()}
	if _, err := controllers.NewPullSecret(deps, controllers.PullSecretOptions{}).Reconcile(context.Background(), controllers.PullSecretKey); err != nil {
		t.Fatal(err)
	}
	store.SetFleet([]state.Node{{Address: "198.18.0.2", Source: "mesos"}})
	store.SetContact("198.18.0.2", true, time.Now(), "")
	store.SetConcern("198.18.0.2", reconciler.Credentials, state.Concern{
		Changes: []string{"create /etc/docker.tar.gz (pull credentials generation 1, mode 600)"}})

	var buf bytes.Buffer
	n := RenderPlan(&buf, r, store, nil)
	out := buf.String()
	for _, want := range []string{"Pull password:\n  ~ create pull password generation 1\n",
		"    ~ credentials: create /etc/docker.tar.gz (pull credentials generation 1, mode 600)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if n != 2 {
		t.Errorf("counted %d changes, want 2", n)
	}
	if pw := store.PullSecret().Current.Password; pw.Empty() || strings.Contains(out, pw.Reveal()) {
		t.Errorf("the plan shows the password (or there is none: %v)", pw.Empty())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("report mode touched %s: %v", dir, err)
	}
}
