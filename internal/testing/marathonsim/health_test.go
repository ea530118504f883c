package marathonsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func healthApp(id string, instances int) map[string]any {
	return map[string]any{
		"id": id, "cmd": "serve", "instances": instances,
		"healthChecks": []any{map[string]any{"protocol": "TCP", "gracePeriodSeconds": 0, "maxConsecutiveFailures": 3}},
	}
}

func TestHealthCounts(t *testing.T) {
	env := newManual(t, Options{})
	env.mem.SetMode("/sick", NeverHealthy)
	env.mem.SetMode("/flap", Flapping)
	env.do(t, "POST", "/v2/apps", healthApp("/ok", 2))
	env.do(t, "POST", "/v2/apps", healthApp("/sick", 2))
	env.do(t, "POST", "/v2/apps", healthApp("/flap", 1))
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/nohc", "cmd": "x", "instances": 2})
	env.step(3)

	ok := env.app(t, "/ok")
	if numAt(t, ok, "tasksRunning") != 2 || numAt(t, ok, "tasksHealthy") != 2 || numAt(t, ok, "tasksUnhealthy") != 0 || len(arr(ok["deployments"])) != 0 {
		t.Fatalf("healthy app: %s", js(ok))
	}
	hr := arr(obj(arr(ok["tasks"])[0])["healthCheckResults"])
	if len(hr) != 1 || obj(hr[0])["alive"] != true || obj(hr[0])["instanceId"] == nil || obj(hr[0])["lastSuccess"] == nil {
		t.Fatalf("healthCheckResults: %s", js(hr))
	}
	sick := env.app(t, "/sick")
	if numAt(t, sick, "tasksRunning") != 2 || numAt(t, sick, "tasksHealthy") != 0 || numAt(t, sick, "tasksUnhealthy") != 2 {
		t.Fatalf("unhealthy app: %s", js(sick))
	}
	if len(arr(sick["deployments"])) != 1 {
		t.Fatal("a deployment whose tasks never become healthy never ends")
	}
	// An app without health checks never counts healthy tasks.
	nohc := env.app(t, "/nohc")
	if numAt(t, nohc, "tasksRunning") != 2 || numAt(t, nohc, "tasksHealthy") != 0 || numAt(t, nohc, "tasksUnhealthy") != 0 {
		t.Fatalf("no health checks: %s", js(nohc))
	}
	// Flapping alternates between healthy and unhealthy.
	states := map[int]bool{}
	for i := 0; i < 4; i++ {
		env.step(1)
		states[numAt(t, env.app(t, "/flap"), "tasksHealthy")] = true
	}
	if !states[0] || !states[1] {
		t.Fatalf("flapping never flipped: %v", states)
	}
	// After maxConsecutiveFailures Marathon kills unhealthy tasks and
	// launches replacements.
	stream := openEvents(t, env.url, "?event_type=unhealthy_instance_kill_event")
	before := taskIDs(env.app(t, "/sick"))
	env.step(4)
	if f := stream.next(t); f.data["appId"] != "/sick" {
		t.Fatalf("kill event: %+v", f.data)
	}
	after := taskIDs(env.app(t, "/sick"))
	if len(after) == 0 || contains(after, before[0]) && contains(after, before[1]) {
		t.Fatalf("unhealthy tasks not replaced: %v -> %v", before, after)
	}
	// Recovering lets the stuck deployment finish.
	env.mem.SetMode("/sick", Healthy)
	env.step(6)
	if s := env.app(t, "/sick"); numAt(t, s, "tasksHealthy") != 2 || len(arr(s["deployments"])) != 0 {
		t.Fatalf("recovered: %s", js(s))
	}
}

func TestCrashAndKillTaskRelaunch(t *testing.T) {
	env := newManual(t, Options{})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/c", "cmd": "x", "backoffSeconds": 1})
	env.step(3)
	old := taskIDs(env.app(t, "/c"))
	if !env.sim.KillTask("/c") {
		t.Fatal("no task killed")
	}
	a := env.app(t, "/c")
	ltf := obj(a["lastTaskFailure"])
	if ltf["state"] != "TASK_FAILED" || ltf["taskId"] != old[0] || ltf["appId"] != "/c" {
		t.Fatalf("lastTaskFailure: %s", js(a["lastTaskFailure"]))
	}
	q := env.do(t, "GET", "/v2/queue", nil)
	if len(arr(q.obj()["queue"])) != 1 {
		t.Fatalf("queue during backoff: %s", q.raw)
	}
	env.step(3)
	now := taskIDs(env.app(t, "/c"))
	if len(now) != 1 || now[0] == old[0] {
		t.Fatalf("not relaunched: %v", now)
	}

	env.mem.SetMode("/crash", Crashing)
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/crash", "cmd": "x"})
	env.step(4)
	if got := env.app(t, "/crash"); got["lastTaskFailure"] == nil || len(arr(got["deployments"])) != 1 {
		t.Fatalf("crashing app: %s", js(got))
	}
}

func TestConstraintsAndAgentGrowth(t *testing.T) {
	env := newManual(t, Options{Agents: []Agent{{Hostname: "a1", IP: "198.18.0.1"}, {Hostname: "a2", IP: "198.18.0.2"}}})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/u", "cmd": "x", "instances": 3, "constraints": []any{[]any{"hostname", "UNIQUE"}}})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/ip", "cmd": "x", "constraints": []any{[]any{"hostname", "LIKE", `198\.18\.0\.2`}}})
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/not1", "cmd": "x", "instances": 2, "constraints": []any{[]any{"hostname", "UNLIKE", "a1"}}})
	env.step(4)
	if n := numAt(t, env.app(t, "/u"), "tasksRunning"); n != 2 {
		t.Fatalf("UNIQUE on 2 agents runs %d of 3", n)
	}
	if h := obj(arr(env.app(t, "/ip")["tasks"])[0])["host"]; h != "a2" {
		t.Fatalf("LIKE on the agent IP placed on %v", h)
	}
	for _, task := range arr(env.app(t, "/not1")["tasks"]) {
		if obj(task)["host"] != "a2" {
			t.Fatalf("UNLIKE a1 placed on %v", obj(task)["host"])
		}
	}
	// The cluster grows: the third instance finds its agent.
	env.sim.SetAgents([]Agent{{Hostname: "a1", IP: "198.18.0.1"}, {Hostname: "a2", IP: "198.18.0.2"}, {Hostname: "a3", IP: "198.18.0.3"}})
	env.step(3)
	u := env.app(t, "/u")
	if numAt(t, u, "tasksRunning") != 3 || len(arr(u["deployments"])) != 0 {
		t.Fatalf("after growth: %s", js(u))
	}
	// An agent goes: its tasks are lost and replaced elsewhere.
	env.sim.SetAgents([]Agent{{Hostname: "a1", IP: "198.18.0.1"}, {Hostname: "a3", IP: "198.18.0.3"}})
	env.step(3)
	ip := env.app(t, "/ip")
	if numAt(t, ip, "tasksRunning") != 0 || obj(ip["lastTaskFailure"])["state"] != "TASK_LOST" {
		t.Fatalf("task on removed agent: %s", js(ip))
	}
	if n := numAt(t, env.app(t, "/not1"), "tasksRunning"); n != 2 {
		t.Fatalf("UNLIKE a1 after a2 left: %d running", n)
	}
	// MemExec can pin an app to a host.
	env.mem.SetHost("/pinned", "a3")
	env.do(t, "POST", "/v2/apps", map[string]any{"id": "/pinned", "cmd": "x"})
	env.step(3)
	if h := obj(arr(env.app(t, "/pinned")["tasks"])[0])["host"]; h != "a3" {
		t.Fatalf("pinned task on %v", h)
	}
}

func TestMesosSlaves(t *testing.T) {
	env := newManual(t, Options{Agents: []Agent{{Hostname: "a1", IP: "198.18.0.1", Attributes: map[string]string{"public_ip": "true"}}, {Hostname: "a2", IP: "198.18.0.2", Inactive: true}}})
	r := env.do(t, "GET", "/master/slaves", nil)
	slaves := arr(r.obj()["slaves"])
	if r.status != 200 || len(slaves) != 2 || r.obj()["recovered_slaves"] == nil {
		t.Fatalf("slaves: %d %s", r.status, r.raw)
	}
	s0, s1 := obj(slaves[0]), obj(slaves[1])
	if s0["pid"] != "slave(1)@198.18.0.1:5051" || s0["hostname"] != "a1" || s0["active"] != true || s1["active"] != false {
		t.Fatalf("slave entries: %s", r.raw)
	}
	if obj(s0["attributes"])["public_ip"] != "true" {
		t.Fatalf("attributes: %s", js(s0["attributes"]))
	}
	sample := obj(arr(mustDecode(t, readTestdata(t, "master-state-mesos-dns-fake.json")).(map[string]any)["slaves"])[0])
	if miss := missingKeys(sample, s0, "", map[string]bool{"attributes.host": true}); len(miss) > 0 {
		t.Fatalf("slave lacks %v", miss)
	}
	if r := env.do(t, "GET", "/master/slaves?slave_id="+s1["id"].(string), nil); len(arr(r.obj()["slaves"])) != 1 {
		t.Fatalf("slave_id filter: %s", r.raw)
	}
	if r := env.do(t, "GET", "/mesos/master/slaves", nil); len(arr(r.obj()["slaves"])) != 2 {
		t.Fatalf("admin router path: %d", r.status)
	}
	env.sim.SetAgents(nil)
	if r := env.do(t, "GET", "/slaves", nil); r.status != 200 || len(arr(r.obj()["slaves"])) != 0 {
		t.Fatalf("empty cluster: %s", r.raw)
	}

	env.sim.SetMesosRedirect("http://198.18.0.100:5050")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(env.url + "/master/slaves")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 307 || res.Header.Get("Location") != "http://198.18.0.100:5050/master/slaves" {
		t.Fatalf("redirect: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestFaultsAndLatency(t *testing.T) {
	env := newManual(t, Options{})
	env.sim.SetFault(Fault{Status: 503, Paths: "/v2/apps", Remaining: 2})
	for i := 0; i < 2; i++ {
		if r := env.do(t, "GET", "/v2/apps", nil); r.status != 503 || len(r.raw) != 0 {
			t.Fatalf("fault %d: %d %q", i, r.status, r.raw)
		}
	}
	if r := env.do(t, "GET", "/v2/apps", nil); r.status != 200 {
		t.Fatalf("fault did not clear after Remaining: %d", r.status)
	}
	// Only matching paths and methods fail; the write is still logged.
	env.sim.SetFault(Fault{Status: 500, Paths: "/v2/apps/*", Methods: "PUT", Body: `{"message":"boom"}`})
	if r := env.do(t, "GET", "/ping", nil); r.status != 200 || strings.TrimSpace(string(r.raw)) != `"pong"` {
		t.Fatalf("ping with Accept json: %d %q", r.status, r.raw)
	}
	r := env.do(t, "PUT", "/v2/apps/x", map[string]any{"cmd": "x"})
	if r.status != 500 || r.obj()["message"] != "boom" {
		t.Fatalf("PUT under fault: %d %s", r.status, r.raw)
	}
	if r := env.do(t, "GET", "/v2/apps/x", nil); r.status != 404 {
		t.Fatalf("a faulted write must change nothing: %d", r.status)
	}
	ws := env.sim.Writes()
	if len(ws) != 1 || ws[0].Status != 500 || !strings.Contains(string(ws[0].Body), `"cmd"`) {
		t.Fatalf("writes: %+v", ws)
	}
	// Until ends a fault on the emulator's clock.
	env.sim.SetFault(Fault{Status: 502, Until: env.clock.Now().Add(time.Minute)})
	if r := env.do(t, "GET", "/v2/info", nil); r.status != 502 {
		t.Fatalf("before Until: %d", r.status)
	}
	env.clock.Step(2 * time.Minute)
	if r := env.do(t, "GET", "/v2/info", nil); r.status != 200 {
		t.Fatalf("after Until: %d", r.status)
	}
	// Latency applies to every request; a client with a shorter timeout fails.
	env.sim.SetLatency(time.Minute)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := c.Get(env.url + "/v2/apps"); err == nil {
		t.Fatal("request beat the configured latency")
	}
	env.sim.SetLatency(0)
	if r := env.do(t, "GET", "/v2/apps", nil); r.status != 200 {
		t.Fatalf("without latency: %d", r.status)
	}
}
