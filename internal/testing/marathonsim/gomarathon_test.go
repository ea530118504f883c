package marathonsim

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	marathon "github.com/gambol99/go-marathon"
)

type testEnv struct {
	sim  *Server
	http *httptest.Server
	mem  *MemExec
}

func newEnv(t *testing.T, agents ...Agent) *testEnv {
	t.Helper()
	if len(agents) == 0 {
		agents = []Agent{{Hostname: "agent-1", IP: "198.18.0.11"}, {Hostname: "agent-2", IP: "198.18.0.12"}}
	}
	mem := NewMemExec()
	sim := New(Options{Agents: agents, Executor: mem, Tick: 2 * time.Millisecond})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		hs.CloseClientConnections()
		sim.Close()
		hs.Close()
	})
	return &testEnv{sim: sim, http: hs, mem: mem}
}

func (e *testEnv) client(t *testing.T) marathon.Marathon {
	t.Helper()
	cfg := marathon.NewDefaultConfig()
	cfg.URL = e.http.URL
	cfg.EventsTransport = marathon.EventsTransportSSE
	c, err := marathon.NewClient(cfg)
	if err != nil {
		t.Fatalf("go-marathon client: %v", err)
	}
	return c
}

func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatalf("deployments still running: %v", s.DeploymentIDs())
	}
}

func registryApp() *marathon.Application {
	app := marathon.NewDockerApplication().Name("/registry").CPU(0.5).Memory(256).Count(1)
	app.Container.Docker.Container("registry:2").Bridged().ExposePort(marathon.PortMapping{
		ContainerPort: 5000, HostPort: 0, Protocol: "tcp", Labels: &map[string]string{"VIP_0": "/registry:5000"},
	})
	app.AddEnv("REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/tls.crt")
	app.AddLabel("HAPROXY_GROUP", "external")
	app.Container.Volume("/etc/registry/certs", "/certs", "RO")
	app.AddConstraint("hostname", "LIKE", "agent-1")
	app.AddHealthCheck(marathon.HealthCheck{Protocol: "TCP", PortIndex: intp(0), GracePeriodSeconds: 30, IntervalSeconds: 5, TimeoutSeconds: 2, MaxConsecutiveFailures: intp(3)})
	return app
}

func intp(i int) *int { return &i }

func TestGoMarathonLifecycle(t *testing.T) {
	env := newEnv(t)
	c := env.client(t)

	events, err := c.AddEventsListener(marathon.EventIDApplications | marathon.EventIDDeploymentSuccess | marathon.EventIDStatusUpdate)
	if err != nil {
		t.Fatalf("AddEventsListener: %v", err)
	}
	defer c.RemoveEventsListener(events)

	// Tasks stay staged until the test has looked at the deployment.
	env.mem.SetMode("/registry", Stuck)
	created, err := c.CreateApplication(registryApp())
	if err != nil {
		t.Fatalf("CreateApplication: %v", err)
	}
	if created.ID != "/registry" || len(created.Deployments) != 1 {
		t.Fatalf("create answer: id=%q deployments=%v", created.ID, created.Deployments)
	}
	deps, err := c.Deployments()
	if err != nil {
		t.Fatalf("Deployments: %v", err)
	}
	if len(deps) != 1 || deps[0].AffectedApps[0] != "/registry" || len(deps[0].Steps) != 2 || deps[0].Steps[0][0].Action != "StartApplication" {
		t.Fatalf("deployments decoded by go-marathon: %+v", deps)
	}
	env.mem.SetMode("/registry", Healthy)
	waitIdle(t, env.sim)

	got, err := c.Application("/registry")
	if err != nil {
		t.Fatalf("Application: %v", err)
	}
	if got.TasksRunning != 1 || got.TasksHealthy != 1 || len(got.Tasks) != 1 {
		t.Fatalf("counts: running=%d healthy=%d tasks=%d", got.TasksRunning, got.TasksHealthy, len(got.Tasks))
	}
	if got.Tasks[0].Host != "agent-1" {
		t.Fatalf("LIKE agent-1 placed the task on %q", got.Tasks[0].Host)
	}
	if ok, err := c.ApplicationOK("/registry"); err != nil || !ok {
		t.Fatalf("ApplicationOK = %v, %v", ok, err)
	}
	// Marathon 1.5+ answers in the networks format, so go-marathon's 1.4
	// structs lose the port mappings (API-NOTES §9 gap 6).
	if got.Container.Docker.PortMappings != nil {
		t.Fatalf("docker.portMappings must be gone from the answer, got %+v", *got.Container.Docker.PortMappings)
	}

	dep, err := c.RestartApplication("/registry", false)
	if err != nil {
		t.Fatalf("RestartApplication: %v", err)
	}
	if dep.DeploymentID == "" {
		t.Fatal("restart returned no deployment id")
	}
	oldTask := got.Tasks[0].ID
	waitIdle(t, env.sim)
	got, err = c.Application("/registry")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tasks) != 1 || got.Tasks[0].ID == oldTask {
		t.Fatalf("restart did not replace the task: %+v", got.Tasks)
	}

	if _, err := c.DeleteApplication("/registry", false); err != nil {
		t.Fatalf("DeleteApplication: %v", err)
	}
	waitIdle(t, env.sim)
	if _, err := c.Application("/registry"); !isNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}

	seen := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for !(seen["deployment_success"] && seen["status_update_event"] && seen["app_terminated_event"]) {
		select {
		case ev := <-events:
			seen[ev.Name] = true
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
}

func isNotFound(err error) bool {
	apiErr, ok := err.(*marathon.APIError)
	return ok && apiErr.ErrCode == marathon.ErrCodeNotFound
}
