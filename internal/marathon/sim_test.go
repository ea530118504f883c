package marathon_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

// Against the emulator: what the operator sends comes back, normalised by
// Marathon's rules, without a difference on the owned fields.
func TestRoundTripThroughEmulator(t *testing.T) {
	sim := marathonsim.New(marathonsim.Options{Agents: []marathonsim.Agent{{Hostname: "agent-1", IP: "198.18.0.11"}},
		Tick: 2 * time.Millisecond})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { hs.CloseClientConnections(); sim.Close(); hs.Close() })
	c, err := marathon.New(marathon.Options{URLs: []string{hs.URL}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	r := v1alpha1.Registry{Spec: v1alpha1.Spec{Marathon: &v1alpha1.MarathonSpec{URLs: []string{hs.URL}},
		Registry: &v1alpha1.RegistryEndpoint{Address: "registry.test:443"}, TLS: &v1alpha1.TLSSpec{},
		App: &v1alpha1.AppSpec{Labels: map[string]string{"HAPROXY_GROUP": "external"}}}}
	v1alpha1.Default(&r)
	app, err := marathon.BuildRegistryApp("registry", &r.Spec, marathon.RegistryInputs{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.Version == "" {
		t.Fatalf("info: %+v %v", info, err)
	}
	dep, err := c.CreateApp(ctx, app)
	if err != nil || dep == "" {
		t.Fatalf("create: %q %v", dep, err)
	}
	if ds, err := c.Deployments(ctx); err != nil || len(ds) > 1 {
		t.Fatalf("deployments: %+v %v", ds, err)
	}
	if err := sim.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetApp(ctx, app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := marathon.Diff(app, st.Definition); len(d) != 0 {
		t.Errorf("diff after create: %q", d)
	}
	tasks, err := c.Tasks(ctx, app.ID)
	if err != nil || len(tasks) != 1 || tasks[0].Endpoint() == "" || tasks[0].Host != "agent-1" {
		t.Fatalf("tasks: %+v %v", tasks, err)
	}
	if _, err := c.GetApp(ctx, "/missing"); !marathon.IsNotFound(err) {
		t.Errorf("missing app: %v", err)
	}
	if _, err := c.RestartApp(ctx, "/missing", false); !marathon.IsNotFound(err) {
		t.Errorf("restart of a missing app through go-marathon: %v", err)
	}
}
