package marathonsim

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	marathon "github.com/gambol99/go-marathon"
)

func TestValidationErrors(t *testing.T) {
	env := newManual(t, Options{})
	cases := []struct {
		name, body  string
		status      int
		message     string
		path, error string
	}{
		{"malformed", `{"id":"/a",`, 400, "Invalid JSON", "", ""},
		{"type", `{"id":"/a","cmd":"x","instances":"2"}`, 422, "Invalid JSON", "/instances", "error.expected.jsnumber"},
		{"range", `{"id":"/a","cmd":"x","upgradeStrategy":{"minimumHealthCapacity":1.5}}`, 422, "Object is not valid", "/upgradeStrategy/minimumHealthCapacity", "is greater than 1"},
		{"id pattern", `{"id":"/Bad_Id","cmd":"x"}`, 422, "Object is not valid", "/id", ""},
		{"enum", `{"id":"/a","cmd":"x","healthChecks":[{"protocol":"GOPHER"}]}`, 422, "Object is not valid", "/healthChecks(0)/protocol", "is not one of (HTTP,HTTPS,TCP,COMMAND,MESOS_HTTP,MESOS_HTTPS,MESOS_TCP)"},
		{"nothing to run", `{"id":"/a"}`, 422, "Object is not valid", "/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."},
		{"port index", `{"id":"/a","cmd":"x","portDefinitions":[],"healthChecks":[{"protocol":"TCP","portIndex":0}]}`, 422, "Object is not valid", "/healthChecks(0)", "Health check port indices must address an element of the ports array or container port mappings."},
		{"both mappings", `{"id":"/a","container":{"docker":{"image":"x","portMappings":[]},"portMappings":[]}}`, 422, "Object is not valid", "/container", "cannot specify both portMappings and docker.portMappings"},
		{"mixed network apis", `{"id":"/a","networks":[{"mode":"host"}],"container":{"docker":{"image":"x","network":"BRIDGE"}}}`, 422, "Object is not valid", "/", "cannot mix deprecated and canonical network APIs"},
		{"unknown field", `{"id":"/a","cmd":"x","instance":2}`, 422, "Object is not valid", "/instance", unknownProperty},
		{"bad regex", `{"id":"/a","cmd":"x","constraints":[["hostname","LIKE","("]]}`, 422, "Object is not valid", "/constraints(0)", "'(' is not a valid regular expression"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := env.do(t, "POST", "/v2/apps", c.body)
			if r.status != c.status || r.obj()["message"] != c.message {
				t.Fatalf("got %d %s", r.status, r.raw)
			}
			if c.status == 400 {
				if _, ok := r.obj()["details"].(string); !ok {
					t.Fatalf("400 details must be the parser message string: %s", r.raw)
				}
				return
			}
			for _, d := range arr(r.obj()["details"]) {
				dm := d.(map[string]any)
				if _, ok := dm["errors"].([]any); !ok || dm["path"] == nil {
					t.Fatalf("detail shape: %s", r.raw)
				}
			}
			if c.error != "" {
				assertDetail(t, r, c.path, c.error)
			} else if !hasPath(r, c.path) {
				t.Fatalf("no detail at %s: %s", c.path, r.raw)
			}
			if e := ValidateApp([]byte(c.body)); e == nil {
				t.Fatal("ValidateApp accepted what POST refused")
			}
		})
	}
	if r := env.do(t, "GET", "/v2/apps", nil); len(arr(r.obj()["apps"])) != 0 {
		t.Fatalf("a refused app was stored: %s", r.raw)
	}

	// go-marathon classifies 422 as InvalidBean and keeps the details.
	c := marathonClient(t, env.url)
	app := marathon.NewDockerApplication().Name("/bad").Count(1)
	app.Container.Docker.Container("registry:2")
	app.SetUpgradeStrategy(marathon.UpgradeStrategy{MinimumHealthCapacity: floatp(2)})
	_, err := c.CreateApplication(app)
	var apiErr *marathon.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrCode != marathon.ErrCodeInvalidBean {
		t.Fatalf("go-marathon error: %v", err)
	}
}

func hasPath(r resp, p string) bool {
	for _, d := range arr(r.obj()["details"]) {
		if d.(map[string]any)["path"] == p {
			return true
		}
	}
	return false
}

func marathonClient(t *testing.T, url string) marathon.Marathon {
	t.Helper()
	cfg := marathon.NewDefaultConfig()
	cfg.URL = url
	cfg.EventsTransport = marathon.EventsTransportSSE
	c, err := marathon.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNotFoundAndConflictBodies(t *testing.T) {
	env := newManual(t, Options{})
	for _, c := range []struct{ method, path, msg string }{
		{"GET", "/v2/apps/nope", "App '/nope' does not exist"},
		{"PATCH", "/v2/apps/nope", "App '/nope' does not exist"},
		{"DELETE", "/v2/apps/grp/nope", "App '/grp/nope' does not exist"},
		{"POST", "/v2/apps/nope/restart", "App '/nope' does not exist"},
		{"DELETE", "/v2/deployments/abc", "DeploymentPlan abc does not exist"},
	} {
		r := env.do(t, c.method, c.path, `{"instances":1}`)
		if r.status != 404 || !reflect.DeepEqual(r.obj(), map[string]any{"message": c.msg}) {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.raw)
		}
	}
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/dup", "cmd": "x"})
	c := marathonClient(t, env.url)
	_, err := c.CreateApplication(marathon.NewDockerApplication().Name("/dup").Command("x"))
	var apiErr *marathon.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrCode != marathon.ErrCodeDuplicateID {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestLockedAndForce(t *testing.T) {
	env := newManual(t, Options{})
	env.mem.SetMode("/reg", Stuck)
	r := env.do(t, "POST", "/v2/apps", map[string]any{"id": "/reg", "cmd": "serve", "instances": 1})
	first := r.header.Get("Marathon-Deployment-Id")
	env.step(3)
	if got := env.app(t, "/reg"); numAt(t, got, "tasksStaged") != 1 || numAt(t, got, "tasksRunning") != 0 {
		t.Fatalf("stuck task should stay staged: %s", js(got))
	}

	r = env.do(t, "PUT", "/v2/apps/reg", map[string]any{"cpus": 0.5})
	want := map[string]any{
		"message":     "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/" + first + "'.",
		"deployments": []any{map[string]any{"id": first}},
	}
	if r.status != 409 || !reflect.DeepEqual(r.obj(), want) {
		t.Fatalf("locked: %d %s", r.status, r.raw)
	}
	for _, p := range []struct{ method, path string }{{"POST", "/v2/apps/reg/restart"}, {"PATCH", "/v2/apps/reg"}, {"DELETE", "/v2/apps/reg?force=false"}} {
		if r := env.do(t, p.method, p.path, `{"cpus":0.5}`); r.status != 409 {
			t.Errorf("%s %s while locked: %d", p.method, p.path, r.status)
		}
	}
	c := marathonClient(t, env.url)
	_, err := c.UpdateApplication(&marathon.Application{ID: "/reg", CPUs: 0.5}, false)
	var apiErr *marathon.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrCode != marathon.ErrCodeAppLocked {
		t.Fatalf("go-marathon sees %v", err)
	}
	ws := env.sim.Writes()
	if len(ws) != 6 || ws[0].Method != "POST" || ws[0].Status != 201 || ws[5].Method != "PUT" || ws[5].Path != "/v2/apps/reg" {
		t.Fatalf("writes recorded: %+v", ws)
	}
	for _, w := range ws[1:] {
		if w.Status != 409 {
			t.Fatalf("write %s %s answered %d while locked", w.Method, w.Path, w.Status)
		}
	}

	stream := openEvents(t, env.url, "?event_type=deployment_failed")
	env.mem.SetMode("/reg", Healthy)
	r = env.do(t, "PUT", "/v2/apps/reg?force=true", map[string]any{"cpus": 0.5})
	if r.status != 200 || r.obj()["deploymentId"] == first {
		t.Fatalf("forced update: %d %s", r.status, r.raw)
	}
	if f := stream.next(t); f.name != "deployment_failed" || f.data["id"] != first {
		t.Fatalf("cancelled deployment event: %+v", f)
	}
	if ids := env.sim.DeploymentIDs(); len(ids) != 1 || ids[0] != r.obj()["deploymentId"] {
		t.Fatalf("deployments after force: %v", ids)
	}
	env.step(6)
	if ids := env.sim.DeploymentIDs(); len(ids) != 0 {
		t.Fatalf("forced deployment did not finish: %v", ids)
	}
	got := env.app(t, "/reg")
	if numAt(t, got, "tasksRunning") != 1 || got["cpus"] != 0.5 {
		t.Fatalf("after force: %s", js(got))
	}
}

func TestPartialUpdateSemantics(t *testing.T) {
	env := newManual(t, Options{})
	env.do(t, "POST", "/v2/apps", map[string]any{
		"id": "/reg", "cmd": "serve", "mem": 256, "instances": 2,
		"labels": map[string]any{"HAPROXY_GROUP": "external", "owner": "ops"},
		"env":    map[string]any{"A": "1"},
	})
	env.step(4)
	before := env.app(t, "/reg")
	tasksBefore := taskIDs(before)

	// Scale only: no restart, only lastScalingAt moves.
	r := env.do(t, "PUT", "/v2/apps/reg", map[string]any{"instances": 3})
	if r.status != 200 {
		t.Fatal(r.status, string(r.raw))
	}
	deps := env.do(t, "GET", "/v2/deployments", nil)
	if act := arr(arr(arr(deps.body)[0].(map[string]any)["steps"])[0].(map[string]any)["actions"])[0].(map[string]any)["action"]; act != "ScaleApplication" {
		t.Fatalf("scale plan: %s", deps.raw)
	}
	env.step(4)
	after := env.app(t, "/reg")
	vi, vb := obj(after["versionInfo"]), obj(before["versionInfo"])
	if vi["lastConfigChangeAt"] != vb["lastConfigChangeAt"] || vi["lastScalingAt"] == vb["lastScalingAt"] {
		t.Fatalf("versionInfo after scale: %v -> %v", vb, vi)
	}
	for _, id := range tasksBefore {
		if !contains(taskIDs(after), id) {
			t.Fatalf("scale restarted task %s", id)
		}
	}

	// A top-level field replaces the stored one wholesale; others are kept.
	r = env.do(t, "PUT", "/v2/apps/reg", map[string]any{"labels": map[string]any{"owner": "dev"}})
	env.step(6)
	got := env.app(t, "/reg")
	if !reflect.DeepEqual(got["labels"], map[string]any{"owner": "dev"}) || got["mem"] != 256.0 || numAt(t, got, "instances") != 3 || !reflect.DeepEqual(got["env"], map[string]any{"A": "1"}) {
		t.Fatalf("partial update: %s", js(got))
	}
	if contains(taskIDs(got), tasksBefore[0]) {
		t.Fatal("a config change must restart tasks")
	}
	// PATCH is a partial update too.
	env.do(t, "PATCH", "/v2/apps/reg", map[string]any{"env": map[string]any{}})
	env.step(6)
	if _, ok := env.app(t, "/reg")["env"]; ok {
		t.Fatal("empty env must be removed (omitEmpty)")
	}
	// partialUpdate=false: the body is the whole app, defaults re-applied.
	env.do(t, "PUT", "/v2/apps/reg?partialUpdate=false", map[string]any{"cmd": "serve"})
	env.step(6)
	got = env.app(t, "/reg")
	if got["mem"] != 128.0 || numAt(t, got, "instances") != 1 || !reflect.DeepEqual(got["labels"], map[string]any{}) {
		t.Fatalf("full replace: %s", js(got))
	}
	// PUT to an unknown id creates it: 201 with Location.
	r = env.do(t, "PUT", "/v2/apps/new", map[string]any{"cmd": "x"})
	if r.status != 201 || r.header.Get("Location") != "/new" || r.obj()["deploymentId"] == nil {
		t.Fatalf("PUT create: %d %v %s", r.status, r.header, r.raw)
	}
}

func taskIDs(app map[string]any) []string {
	var ids []string
	for _, t := range arr(app["tasks"]) {
		ids = append(ids, t.(map[string]any)["id"].(string))
	}
	return ids
}

// A GET, modify, PUT through go-marathon's 1.4 structs: Marathon takes the
// legacy BRIDGE format, and the assigned service port survives.
func TestLegacyRoundTripKeepsServicePort(t *testing.T) {
	env := newManual(t, Options{})
	c := marathonClient(t, env.url)
	if _, err := c.CreateApplication(registryApp()); err != nil {
		t.Fatal(err)
	}
	env.step(4)
	first := obj(arr(obj(env.app(t, "/registry")["container"])["portMappings"])[0])
	app := registryApp()
	app.AddLabel("owner", "ops")
	if _, err := c.UpdateApplication(app, false); err != nil {
		t.Fatal(err)
	}
	env.step(6)
	got := env.app(t, "/registry")
	pm := obj(arr(obj(got["container"])["portMappings"])[0])
	if pm["servicePort"] != first["servicePort"] || pm["containerPort"] != 5000.0 || !reflect.DeepEqual(pm["labels"], map[string]any{"VIP_0": "/registry:5000"}) {
		t.Fatalf("port mapping after legacy PUT: %s (was %s)", js(pm), js(first))
	}
	if !reflect.DeepEqual(got["networks"], []any{map[string]any{"mode": "container/bridge"}}) {
		t.Fatalf("networks: %s", js(got["networks"]))
	}
}

func TestDeleteDeployment(t *testing.T) {
	env := newManual(t, Options{})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/a", "cmd": "x", "mem": 64})
	env.step(4)
	env.mem.SetMode("/a", Stuck)
	r := env.do(t, "PUT", "/v2/apps/a", map[string]any{"mem": 512})
	dep := r.obj()["deploymentId"].(string)
	env.step(2)

	// Rollback (force=false): a new deployment restores the original app.
	r = env.do(t, "DELETE", "/v2/deployments/"+dep, nil)
	if r.status != 200 || r.obj()["deploymentId"] == nil || r.obj()["deploymentId"] == dep {
		t.Fatalf("rollback: %d %s", r.status, r.raw)
	}
	if got := env.app(t, "/a"); got["mem"] != 64.0 {
		t.Fatalf("rollback target mem = %v", got["mem"])
	}
	rollback := r.obj()["deploymentId"].(string)
	// force=true: 202, empty body, no new deployment.
	r = env.do(t, "DELETE", "/v2/deployments/"+rollback+"?force=true", nil)
	if r.status != 202 || len(r.raw) != 0 || len(env.sim.DeploymentIDs()) != 0 {
		t.Fatalf("forced delete: %d %q %v", r.status, r.raw, env.sim.DeploymentIDs())
	}

	// A rolled-back create deletes the app.
	env.mem.SetMode("/b", Stuck)
	r = env.do(t, "POST", "/v2/apps", map[string]any{"id": "/b", "cmd": "x"})
	env.do(t, "DELETE", "/v2/deployments/"+r.header.Get("Marathon-Deployment-Id"), nil)
	env.step(3)
	if r := env.do(t, "GET", "/v2/apps/b", nil); r.status != 404 {
		t.Fatalf("rolled-back create still exists: %d", r.status)
	}
}

// upgradeStrategy 1/1 starts the new task next to the old one; 0/0 kills
// the old one first.
func TestRestartFollowsUpgradeStrategy(t *testing.T) {
	for _, c := range []struct {
		name        string
		min, over   float64
		wantOverlap bool
	}{{"1/1", 1, 1, true}, {"0/0", 0, 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			env := newManual(t, Options{})
			env.do(t, "POST", "/v2/apps", map[string]any{"id": "/r", "cmd": "x", "upgradeStrategy": map[string]any{"minimumHealthCapacity": c.min, "maximumOverCapacity": c.over}})
			env.step(4)
			old := taskIDs(env.app(t, "/r"))[0]
			r := env.do(t, "POST", "/v2/apps/r/restart", nil)
			if r.status != 200 || r.header.Get("Marathon-Deployment-Id") == "" {
				t.Fatalf("restart: %d %s", r.status, r.raw)
			}
			overlap := false
			for i := 0; i < 8 && len(env.sim.DeploymentIDs()) > 0; i++ {
				env.step(1)
				ids := taskIDs(env.app(t, "/r"))
				if len(ids) == 2 && contains(ids, old) {
					overlap = true
				}
			}
			if len(env.sim.DeploymentIDs()) != 0 {
				t.Fatal("restart did not finish")
			}
			ids := taskIDs(env.app(t, "/r"))
			if overlap != c.wantOverlap || len(ids) != 1 || ids[0] == old {
				t.Fatalf("overlap=%v tasks=%v old=%s", overlap, ids, old)
			}
		})
	}
}

func TestBatchUpdate(t *testing.T) {
	env := newManual(t, Options{})
	r := env.do(t, "PUT", "/v2/apps", readTestdata(t, "examples/apps_create.json"))
	if r.status != 200 || r.obj()["deploymentId"] == nil {
		t.Fatalf("batch create: %d %s", r.status, r.raw)
	}
	env.step(4)
	r = env.do(t, "PATCH", "/v2/apps", readTestdata(t, "examples/apps_patch.json"))
	if r.status != 200 {
		t.Fatalf("batch patch: %d %s", r.status, r.raw)
	}
	env.step(6)
	a := env.app(t, "/test/sleep60")
	if a["cpus"] != 0.3 || numAt(t, a, "tasksRunning") != 2 {
		t.Fatalf("after batch: %s", js(a))
	}
	var list struct {
		Apps []json.RawMessage `json:"apps"`
	}
	_ = json.Unmarshal(env.do(t, "GET", "/v2/apps?id=SLEEP1", nil).raw, &list)
	if len(list.Apps) != 1 {
		t.Fatalf("?id= filter is a case-insensitive substring: %d apps", len(list.Apps))
	}
}

func floatp(f float64) *float64 { return &f }

func TestKillTasksWithScale(t *testing.T) {
	env := newManual(t, Options{})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/k", "cmd": "x", "instances": 3})
	env.step(3)
	ids := taskIDs(env.app(t, "/k"))
	r := env.do(t, "DELETE", "/v2/apps/k/tasks/"+ids[0], nil)
	if r.status != 200 || obj(r.obj()["task"])["id"] != ids[0] {
		t.Fatalf("kill one: %d %s", r.status, r.raw)
	}
	env.step(3)
	if a := env.app(t, "/k"); numAt(t, a, "tasksRunning") != 3 || contains(taskIDs(a), ids[0]) {
		t.Fatalf("killed task must be replaced: %s", js(a))
	}
	r = env.do(t, "POST", "/v2/tasks/delete?scale=true", map[string]any{"ids": taskIDs(env.app(t, "/k"))[:2]})
	if r.status != 200 || r.header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("kill and scale: %d %s", r.status, r.raw)
	}
	env.step(3)
	if a := env.app(t, "/k"); numAt(t, a, "instances") != 1 || numAt(t, a, "tasksRunning") != 1 {
		t.Fatalf("after kill+scale: %s", js(a))
	}
}
