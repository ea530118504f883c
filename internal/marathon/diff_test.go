package marathon

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// echoed is what Marathon 1.7 returns for the sample registry app: defaults
// filled, service port assigned, fields in its own order.
func echoed(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/marathon-registry.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sampleApp is the sample's registry app in its env form (no nodes, so no
// config file), the form of testdata/marathon-registry.json.
func sampleApp(t *testing.T) *App {
	t.Helper()
	r := sampleSpec(t)
	r.Spec.Nodes = nil
	a, err := BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file", ConfigHash: testConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name string
		edit func(actual map[string]any, desired *App)
		want []string
	}{
		{"in sync despite Marathon's defaults", func(map[string]any, *App) {}, nil},
		{"scaled to 0", func(a map[string]any, _ *App) { a["instances"] = 0.0 },
			[]string{"instances: 0 -> 1"}},
		{"image changed", func(a map[string]any, _ *App) {
			obj(obj(a["container"])["docker"])["image"] = "registry:2"
		}, []string{"container.docker.image: registry:2 -> registry:2.8.3"}},
		{"label removed", func(a map[string]any, _ *App) { delete(obj(a["labels"]), "HAPROXY_GROUP") },
			[]string{"labels.HAPROXY_GROUP: <unset> -> external"}},
		{"label a human added is not ours", func(a map[string]any, _ *App) {
			obj(a["labels"])["team"] = "infra"
			obj(a["env"])["DEBUG"] = "1"
			a["acceptedResourceRoles"] = []any{"slave_public"}
			obj(obj(a["container"])["docker"])["forcePullImage"] = true
		}, nil},
		{"label dropped from the spec", func(a map[string]any, d *App) {
			delete(d.Labels, "HAPROXY_GROUP")
		}, []string{"labels.HAPROXY_GROUP: external -> removed"}},
		{"spec image change", func(_ map[string]any, d *App) { d.Container.Docker.Image = "registry:3.0.0" },
			[]string{"container.docker.image: registry:2.8.3 -> registry:3.0.0"}},
		{"secret changed is never shown", func(a map[string]any, _ *App) {
			obj(a["env"])[EnvHTTPSecret] = "other-secret"
		}, []string{"env.REGISTRY_HTTP_SECRET: <redacted> changed"}},
		{"VIP label changed", func(a map[string]any, _ *App) {
			pm := obj(list(obj(a["container"])["portMappings"])[0])
			obj(pm["labels"])[VIPLabel] = "10.0.0.1:443"
		}, []string{"container.portMappings[0].labels.VIP_0: 10.0.0.1:443 -> 192.168.0.1:443"}},
		{"certs volume became writable", func(a map[string]any, _ *App) {
			obj(list(obj(a["container"])["volumes"])[1])["mode"] = "RW"
		}, []string{"container.volumes[/certs]: /etc/privateregistry/certs:RW -> /etc/privateregistry/certs:RO"}},
		{"health check replaced", func(a map[string]any, _ *App) {
			a["healthChecks"] = []any{map[string]any{"protocol": "HTTP", "path": "/", "portIndex": 0.0}}
		}, []string{"healthChecks[0].protocol: HTTP -> TCP"}},
		{"health checks removed", func(a map[string]any, _ *App) { delete(a, "healthChecks") },
			[]string{"healthChecks: 0 entries -> 1 entries"}},
		{"constraint changed", func(a map[string]any, _ *App) {
			a["constraints"] = []any{[]any{"hostname", "LIKE", "10.0.0.9"}}
		}, []string{"constraints: [hostname:LIKE:10.0.0.9] -> [hostname:LIKE:192.168.1.80]"}},
		{"switched to host networking", func(a map[string]any, _ *App) { delete(a, "networks") },
			[]string{"networks: host -> container/bridge"}},
		{"legacy port mappings are read", func(a map[string]any, _ *App) {
			c := obj(a["container"])
			obj(c["docker"])["portMappings"] = c["portMappings"]
			delete(c, "portMappings")
		}, nil},
		{"upgrade strategy owned only when the spec sets it", func(a map[string]any, d *App) {
			d.UpgradeStrategy = &UpgradeStrategy{0, 0}
		}, []string{"upgradeStrategy.minimumHealthCapacity: 1 -> 0", "upgradeStrategy.maximumOverCapacity: 1 -> 0"}},
		{"fixed service port", func(_ map[string]any, d *App) { d.Container.PortMappings[0].ServicePort = 10443 },
			[]string{"container.portMappings[0].servicePort: 10000 -> 10443"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			actual, desired := echoed(t), sampleApp(t)
			c.edit(actual, desired)
			got := Diff(desired, actual)
			if !slices.Equal(got, c.want) {
				t.Errorf("Diff =\n  %q\nwant\n  %q", got, c.want)
			}
			for _, l := range got {
				if strings.Contains(l, "s3cret") || strings.Contains(l, "other-secret") {
					t.Errorf("diff line shows the secret: %s", l)
				}
			}
		})
	}
}

// TestDiffMigrationToConfigFile: an app Marathon holds in the env form
// (HTTP secret in env) against the sample in config-file form: one update
// moves it, and neither the diff nor the body shows the secret.
func TestDiffMigrationToConfigFile(t *testing.T) {
	actual := echoed(t)
	r := sampleSpec(t)
	desired, err := BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file", ConfigHash: testConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"args: <unset> -> serve /certs/config.yml",
		"env.REGISTRY_HTTP_ADDR: 0.0.0.0:5000 -> removed",
		"env.REGISTRY_HTTP_SECRET: <redacted> -> removed",
		"env.REGISTRY_HTTP_TLS_CERTIFICATE: /certs/tls.crt -> removed",
		"env.REGISTRY_HTTP_TLS_KEY: /certs/tls.key -> removed",
		"labels.registry-operator/config: <unset> -> " + testConfigHash,
	}
	if got := Diff(desired, actual); !slices.Equal(got, want) {
		t.Errorf("Diff =\n  %q\nwant\n  %q", got, want)
	}
	body, err := UpdateBody(desired, actual)
	if err != nil {
		t.Fatal(err)
	}
	env := body["env"].(map[string]any)
	for _, k := range ReservedEnv {
		if _, ok := env[k]; ok {
			t.Errorf("update body keeps env %s", k)
		}
	}
	b, _ := json.Marshal(body)
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("update body carries the HTTP secret: %s", b)
	}
	if got := body["args"]; !reflect.DeepEqual(got, []any{"serve", ConfigContainerPath}) {
		t.Errorf("args = %v", got)
	}
}

func TestUpdateBodyKeepsHumanKeys(t *testing.T) {
	actual, desired := echoed(t), sampleApp(t)
	obj(actual["labels"])["team"] = "infra"
	obj(actual["env"])["DB"] = map[string]any{"secret": "db"}
	delete(desired.Labels, "HAPROXY_GROUP") // dropped from the spec: must go
	body, err := UpdateBody(desired, actual)
	if err != nil {
		t.Fatal(err)
	}
	labels, env := body["labels"].(map[string]any), body["env"].(map[string]any)
	if labels["team"] != "infra" || env["DB"] == nil {
		t.Errorf("keys a human added were dropped: labels %v env %v", labels, env)
	}
	if _, ok := labels["HAPROXY_GROUP"]; ok {
		t.Errorf("label dropped from the spec kept: %v", labels)
	}
	if labels[OwnerLabel] != "registry" {
		t.Errorf("owner label missing: %v", labels)
	}
	for _, k := range []string{"instances", "container", "networks", "healthChecks", "constraints"} {
		if _, ok := body[k]; !ok {
			t.Errorf("owned field %s missing from the PUT body", k)
		}
	}
	for _, k := range []string{"acceptedResourceRoles", "fetch", "backoffSeconds"} {
		if _, ok := body[k]; ok {
			t.Errorf("field %s not owned but sent", k)
		}
	}
	// The body, with labels merged, still passes Marathon's schema.
	b, _ := json.Marshal(body)
	if err := validateApp(t, b); err != nil {
		t.Errorf("PUT body fails the schema: %v", err)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		status int
		body   string
		kind   Kind
		check  func(*Error) bool
	}{
		{404, `{"message":"App '/x' does not exist"}`, KindNotFound, nil},
		{409, `{"message":"App is locked by one or more deployments.","deployments":[{"id":"d1"}]}`, KindLocked,
			func(e *Error) bool { return slices.Equal(e.Deployments, []string{"d1"}) }},
		{409, `{"message":"An app with id [/x] already exists."}`, KindConflict, nil},
		{422, `{"message":"Object is not valid","details":[{"path":"/upgradeStrategy/minimumHealthCapacity","errors":["is greater than 1"]}]}`,
			KindInvalid, func(e *Error) bool {
				return slices.Equal(e.DetailLines(), []string{"/upgradeStrategy/minimumHealthCapacity: is greater than 1"})
			}},
		{400, `{"message":"Invalid JSON","details":"Unexpected end-of-input"}`, KindInvalid,
			func(e *Error) bool { return len(e.Details) == 1 && e.Details[0].Errors[0] == "Unexpected end-of-input" }},
		{503, ``, KindUnavailable, nil},
		{500, `{"message":"boom"}`, KindUnavailable, func(e *Error) bool { return strings.Contains(e.Error(), "boom") }},
		{401, `{"message":"unauthenticated"}`, KindOther, nil},
	}
	for _, c := range cases {
		e := classify("PUT", "/v2/apps/x", c.status, []byte(c.body))
		if e.Kind != c.kind || (c.check != nil && !c.check(e)) {
			t.Errorf("%d %s: got %+v (%v)", c.status, c.body, e, e)
		}
	}
}
