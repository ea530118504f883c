package marathonsim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Marathon's own example app (examples/app.json) sends both cmd and args,
// which Marathon refuses; without args it is accepted and answered in the
// 1.5 format: BRIDGE + docker.portMappings become networks and
// container.portMappings, portDefinitions are dropped.
func TestExampleAppNormalisation(t *testing.T) {
	env := newManual(t, Options{})
	body := mustDecode(t, readTestdata(t, "examples/app.json")).(map[string]any)

	r := env.do(t, "POST", "/v2/apps", body)
	if r.status != 422 {
		t.Fatalf("cmd+args: status %d %s", r.status, r.raw)
	}
	assertDetail(t, r, "/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")

	delete(body, "args")
	r = env.do(t, "POST", "/v2/apps", body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if r.header.Get("Location") != "/foo" || r.header.Get("Marathon-Deployment-Id") == "" {
		t.Fatalf("headers: %v", r.header)
	}
	app := r.obj()
	want := map[string]any{
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type": "DOCKER",
			"docker": map[string]any{
				"forcePullImage": false, "image": "mesosphere:marathon/latest", "privileged": false,
				"parameters": []any{map[string]any{"key": "name", "value": "kdc"}},
			},
			"portMappings": []any{map[string]any{
				"containerPort": 80.0, "hostPort": 0.0, "protocol": "tcp", "servicePort": 10019.0,
				"name": "http", "labels": map[string]any{"vip": "192.168.0.1:80"},
			}},
			"volumes": []any{map[string]any{"containerPath": "/docker_storage", "hostPath": "/hdd/tools/docker/registry", "mode": "RW"}},
		},
		"tasksStaged": 0.0, "tasksRunning": 0.0, "tasksHealthy": 0.0, "tasksUnhealthy": 0.0,
		"killSelection": "YOUNGEST_FIRST", "gpus": 0.0, "requirePorts": false,
		"unreachableStrategy": map[string]any{"inactiveAfterSeconds": 0.0, "expungeAfterSeconds": 0.0},
		"fetch": []any{
			map[string]any{"uri": "https://foo.com/setup.py", "executable": false, "extract": true, "cache": false},
			map[string]any{"uri": "https://foo.com/archive.zip", "executable": false, "extract": true, "cache": true, "destPath": "newname.zip"},
		},
	}
	for k, v := range want {
		if !reflect.DeepEqual(app[k], v) {
			t.Errorf("%s = %s, want %s", k, js(app[k]), js(v))
		}
	}
	for _, k := range []string{"portDefinitions", "ipAddress", "ports", "uris"} {
		if _, ok := app[k]; ok {
			t.Errorf("%s must not be in the answer: %s", k, js(app[k]))
		}
	}
	hc := arr(app["healthChecks"])[0].(map[string]any)
	if hc["delaySeconds"] != 15.0 || hc["ipProtocol"] != "IPv4" || hc["intervalSeconds"] != 20.0 {
		t.Errorf("health check defaults: %s", js(hc))
	}
	deps := arr(app["deployments"])
	if len(deps) != 1 || deps[0].(map[string]any)["id"] != r.header.Get("Marathon-Deployment-Id") {
		t.Errorf("deployments: %s", js(deps))
	}
}

func assertDetail(t *testing.T, r resp, path, msg string) {
	t.Helper()
	for _, d := range arr(r.obj()["details"]) {
		dm := d.(map[string]any)
		if dm["path"] != path {
			continue
		}
		for _, e := range arr(dm["errors"]) {
			if e == msg {
				return
			}
		}
	}
	t.Fatalf("no detail %s %q in %s", path, msg, r.raw)
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// Every documented app body is accepted (or refused for the documented
// reason) and comes back with the fields Marathon always prints.
func TestDocumentedAppsRoundTrip(t *testing.T) {
	env := newManual(t, Options{})
	var bodies []map[string]any
	for _, name := range []string{"app-check-http-example.json", "app_list.json", "group.json", "queue.json"} {
		v := mustDecode(t, readTestdata(t, "examples/"+name))
		collectApps(v, &bodies)
	}
	files, _ := filepath.Glob("testdata/sample-apps/*.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		bodies = append(bodies, mustDecode(t, b).(map[string]any))
	}
	if len(bodies) < 12 {
		t.Fatalf("only %d documented apps found", len(bodies))
	}
	always := []string{"id", "instances", "cpus", "mem", "disk", "gpus", "executor", "backoffSeconds", "backoffFactor",
		"maxLaunchDelaySeconds", "requirePorts", "labels", "killSelection", "upgradeStrategy", "unreachableStrategy",
		"networks", "version", "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments"}
	seenIDs := map[string]bool{}
	for _, b := range bodies {
		id := b["id"].(string)
		r := env.do(t, "POST", "/v2/apps", b)
		if seenIDs[id] {
			// queue.json repeats an app of group.json: a duplicate id.
			if r.status != 409 || r.obj()["message"] != "An app with id ["+id+"] already exists." || r.obj()["deployments"] != nil {
				t.Fatalf("duplicate %s: %d %s", id, r.status, r.raw)
			}
			continue
		}
		seenIDs[id] = true
		if id == "/pinger-bridge-app" {
			// docker.requirePorts is not in the schema: refused by default.
			if r.status != 422 {
				t.Fatalf("%s: %d %s", id, r.status, r.raw)
			}
			assertDetail(t, r, "/container/docker/requirePorts", unknownProperty)
			continue
		}
		if r.status != 201 {
			t.Fatalf("%s: %d %s", id, r.status, r.raw)
		}
		app := r.obj()
		for _, k := range always {
			if _, ok := app[k]; !ok {
				t.Errorf("%s: %s missing", id, k)
			}
		}
		for _, k := range []string{"ports", "uris", "ipAddress", "storeUrls"} {
			if _, ok := app[k]; ok {
				t.Errorf("%s: legacy %s still present", id, k)
			}
		}
		for _, k := range omitEmptyKeys {
			if v, ok := app[k]; ok && isEmpty(v) {
				t.Errorf("%s: empty %s printed", id, k)
			}
		}
		mode := arr(app["networks"])[0].(map[string]any)["mode"]
		_, pds := app["portDefinitions"]
		_, pms := obj(app["container"])["portMappings"]
		if (mode == "host") != pds || (mode == "host") == pms {
			t.Errorf("%s: mode %v with portDefinitions=%v portMappings=%v", id, mode, pds, pms)
		}
		if d := obj(obj(app["container"])["docker"]); d != nil {
			if _, ok := d["network"]; ok {
				t.Errorf("%s: docker.network still present", id)
			}
		}
	}
	// Service ports the examples pin are kept (group.json's registry asks for 5000).
	reg := env.app(t, "/tools/docker/registry")
	pm := arr(obj(reg["container"])["portMappings"])[0].(map[string]any)
	if pm["servicePort"] != 5000.0 || pm["containerPort"] != 5000.0 {
		t.Errorf("registry port mapping: %s", js(pm))
	}
	// The lenient mode accepts what Marathon itself accepts.
	lenient := newManual(t, Options{IgnoreUnknownFields: true})
	b, _ := os.ReadFile("testdata/sample-apps/pinger-bridge-app.json")
	if r := lenient.do(t, "POST", "/v2/apps", b); r.status != 201 {
		t.Fatalf("lenient: %d %s", r.status, r.raw)
	}
}

func collectApps(v any, out *[]map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["cmd"]; ok {
			*out = append(*out, x)
			return
		}
		if _, ok := x["container"]; ok && x["id"] != nil {
			*out = append(*out, x)
			return
		}
		for _, e := range x {
			collectApps(e, out)
		}
	case []any:
		for _, e := range x {
			collectApps(e, out)
		}
	}
}

// The deployment list, task list, info and deployment results carry every
// key Marathon's documented examples show.
func TestResponseShapesMatchExamples(t *testing.T) {
	env := newManual(t, Options{})
	env.mem.SetMode("/foo", Stuck)
	r := env.do(t, "POST", "/v2/apps", map[string]any{"id": "/foo", "cmd": "sleep 100", "instances": 2})
	if r.status != 201 {
		t.Fatal(r.status, string(r.raw))
	}
	env.step(2)
	deps := env.do(t, "GET", "/v2/deployments", nil)
	ex := mustDecode(t, readTestdata(t, "examples/deployments.json"))
	if miss := missingKeys(ex, deps.body, "", map[string]bool{"readinessCheckResults[0]": true}); len(miss) > 0 {
		t.Errorf("deployments lack %v: %s", miss, deps.raw)
	}
	d0 := arr(deps.body)[0].(map[string]any)
	if d0["currentStep"] != 2.0 || d0["totalSteps"] != 2.0 {
		t.Errorf("stuck create should sit on step 2 of 2: %s", deps.raw)
	}
	steps := mustDecode(t, readTestdata(t, "examples/deployment_steps.json")).(map[string]any)["steps"]
	if !reflect.DeepEqual(d0["steps"], replaceApp(steps, "/tools/oauth-server", "/foo")) {
		t.Errorf("steps %s, want the documented StartApplication+ScaleApplication", js(d0["steps"]))
	}

	env.mem.SetMode("/foo", Healthy)
	env.step(3)
	tasks := env.do(t, "GET", "/v2/tasks", nil)
	skip := map[string]bool{"region": true, "zone": true}
	if miss := missingKeys(mustDecode(t, readTestdata(t, "examples/tasks.json")), tasks.body, "", skip); len(miss) > 0 {
		t.Errorf("tasks lack %v", miss)
	}
	if miss := missingKeys(mustDecode(t, readTestdata(t, "examples/app_tasks.json")), env.do(t, "GET", "/v2/apps/foo/tasks", nil).body, "", skip); len(miss) > 0 {
		t.Errorf("app tasks lack %v", miss)
	}
	info := env.do(t, "GET", "/v2/info", nil)
	exInfo := mustDecode(t, readTestdata(t, "examples/info.json")).(map[string]any)
	for _, k := range keys(exInfo) {
		if _, ok := info.obj()[k]; !ok {
			t.Errorf("info lacks %s", k)
		}
	}
	if _, ok := obj(info.obj()["http_config"])["http_port"].(float64); !ok {
		t.Errorf("http_port must be a number: %s", info.raw)
	}
	put := env.do(t, "PUT", "/v2/apps/foo", map[string]any{"instances": 1})
	if miss := missingKeys(mustDecode(t, readTestdata(t, "examples/deployments_result.json")), put.body, "", nil); len(miss) > 0 || put.status != 200 {
		t.Errorf("PUT result %d lacks %v", put.status, miss)
	}
}

func replaceApp(v any, from, to string) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(bytes.ReplaceAll(b, []byte(from), []byte(to)), &out)
	return out
}

// The canned responses go-marathon's own tests decode (1.5-era master
// copy): our answers carry the same keys, except the ones Marathon 1.5+
// no longer prints.
func TestShapesMatchGoMarathonRecordings(t *testing.T) {
	var methods []struct {
		URI     string `yaml:"uri"`
		Method  string `yaml:"method"`
		Scope   string `yaml:"scope"`
		Content string `yaml:"content"`
	}
	if err := yaml.Unmarshal(readTestdata(t, "go-marathon/methods-master-94e7bcb.yml"), &methods); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]any{}
	for _, m := range methods {
		if m.Scope == "" && m.Content != "" {
			var v any
			if json.Unmarshal([]byte(m.Content), &v) == nil {
				recorded[m.Method+" "+m.URI] = v
			}
		}
	}
	env := newManual(t, Options{})
	app := map[string]any{
		"id": "/fake-app", "cmd": "python toggle.py $PORT0", "instances": 2, "cpus": 0.2, "mem": 32,
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "python:3", "network": "BRIDGE",
			"portMappings": []any{map[string]any{"containerPort": 8080, "hostPort": 0, "servicePort": 9000, "protocol": "tcp"}}}},
		"healthChecks": []any{map[string]any{"path": "/health", "portIndex": 0, "protocol": "HTTP", "gracePeriodSeconds": 5, "intervalSeconds": 10, "timeoutSeconds": 10, "maxConsecutiveFailures": 3}},
		"uris":         []any{"http://downloads.mesosphere.com/misc/toggle.tgz"},
	}
	created := env.do(t, "POST", "/v2/apps", app)
	env.step(4)
	env.sim.KillTask("/fake-app")
	env.step(4)
	// Keys Marathon 1.5+ dropped or moved (API-NOTES §3, §4), plus fields the
	// recordings fill that this app does not use.
	legacy := map[string]bool{"ports": true, "uris": true, "storeUrls": true, "network": true, "command": true,
		"taskId": true, "args": true, "user": true, "dependencies": true, "env": true, "lastFailure": true,
		"residency": true, "secrets": true, "constraints": true, "app.lastTaskFailure.version": true}
	checks := []struct{ key, method, path string }{
		{"POST /v2/apps", "", ""},
		{"GET /v2/apps/fake-app", "GET", "/v2/apps/fake-app"},
		{"GET /v2/apps", "GET", "/v2/apps"},
		{"GET /v2/deployments", "", ""},
		{"GET /v2/info", "GET", "/v2/info"},
		{"GET /v2/leader", "GET", "/v2/leader"},
		{"GET /v2/tasks", "GET", "/v2/tasks"},
		{"POST /v2/apps/fake-app/restart", "POST", "/v2/apps/fake-app/restart"},
		{"PUT /v2/apps/fake-app?force=true", "PUT", "/v2/apps/fake-app?force=true"},
		{"DELETE /v2/apps/fake-app", "DELETE", "/v2/apps/fake-app"},
	}
	for _, c := range checks {
		want, ok := recorded[c.key]
		if !ok {
			t.Fatalf("no recording for %s", c.key)
		}
		got := created.body
		switch {
		case c.key == "GET /v2/deployments":
			env.do(t, "PUT", "/v2/apps/fake-app?force=true", map[string]any{"instances": 3})
			got = env.do(t, "GET", "/v2/deployments", nil).body
		case c.method != "":
			body := any(nil)
			if c.method == "PUT" {
				body = map[string]any{"cpus": 0.3}
			}
			got = env.do(t, c.method, c.path, body).body
		}
		skip := legacy
		if c.key == "GET /v2/info" {
			// 0.7-era config keys; today's are checked against examples/info.json.
			skip = map[string]bool{"event_subscriber": true, "assets_path": true, "zk_future_timeout": true, "zk_hosts": true,
				"zk_path": true, "zk_state": true, "reconciliation_initial_delay": true, "reconciliation_interval": true}
		}
		if miss := missingKeys(want, got, "", skip); len(miss) > 0 {
			t.Errorf("%s lacks %v\n got %s", c.key, miss, js(got))
		}
		env.step(4)
	}
}

// Our SSE events carry every key of the documented samples.
func TestEventShapesMatchExamples(t *testing.T) {
	want := map[string]map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(readTestdata(t, "examples/events.txt")))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			m := mustDecode(t, []byte(line)).(map[string]any)
			want[m["eventType"].(string)] = m
		}
	}
	env := newManual(t, Options{})
	stream := openEvents(t, env.url, "")
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/test-app", "cmd": "sleep 1"})
	env.step(3)
	got := map[string]map[string]any{}
	for len(got) < len(want) {
		ev := stream.next(t)
		if _, ok := want[ev.name]; ok {
			got[ev.name] = ev.data
		}
	}
	for name, w := range want {
		if miss := missingKeys(w, got[name], "", nil); len(miss) > 0 {
			t.Errorf("%s lacks %v: %s", name, miss, js(got[name]))
		}
	}
}
