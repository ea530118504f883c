package marathon

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// sampleSpec loads config/samples/registry.yaml with defaults applied.
func sampleSpec(t *testing.T) *v1alpha1.Registry {
	t.Helper()
	b, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r v1alpha1.Registry
	if err := yaml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	v1alpha1.Default(&r)
	return &r
}

func ptr[T any](v T) *T { return &v }

func TestBuildGolden(t *testing.T) {
	cases := map[string]func(t *testing.T) *App{
		"registry-sample": func(t *testing.T) *App {
			r := sampleSpec(t)
			return mustApp(t)(BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file\n", ConfigHash: testConfigHash}))
		},
		"registry-env": func(t *testing.T) *App {
			// No nodes: nothing places config.yml, so the env form.
			r := sampleSpec(t)
			r.Spec.Nodes = nil
			return mustApp(t)(BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file\n"}))
		},
		"registry-minimal": func(t *testing.T) *App {
			// No TLS (insecure), no secret file, no labels, env or constraints.
			r := &v1alpha1.Registry{Spec: v1alpha1.Spec{
				Marathon: &v1alpha1.MarathonSpec{URLs: []string{"http://127.0.0.1:8080"}},
				TLS:      &v1alpha1.TLSSpec{Mode: v1alpha1.TLSInsecure},
				App:      &v1alpha1.AppSpec{},
			}}
			v1alpha1.Default(r)
			return mustApp(t)(BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "", ConfigHash: testConfigHash}))
		},
		"registry-full": func(t *testing.T) *App {
			// Every optional field: fixed ports, HTTPS check, 0/0 upgrade, zero instances.
			r := sampleSpec(t)
			a := r.Spec.App
			a.Instances = ptr(0)
			a.HostPort, a.ServicePort = 5000, 10443
			a.HealthCheck = &v1alpha1.HealthCheckSpec{Protocol: "MESOS_HTTPS", Path: "/v2/",
				GracePeriod: v1alpha1.D(120e9), Interval: v1alpha1.D(15e9), Timeout: v1alpha1.D(5e9), MaxConsecutiveFailures: 5}
			a.UpgradeStrategy = &v1alpha1.UpgradeStrategy{MinimumHealthCapacity: ptr(0.0), MaximumOverCapacity: ptr(0.0)}
			a.Constraints = append(a.Constraints, []string{"hostname", "UNIQUE"})
			return mustApp(t)(BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret", ConfigHash: testConfigHash}))
		},
		"ui-sample": func(t *testing.T) *App {
			r := sampleSpec(t)
			return mustApp(t)(BuildUIApp(r.Metadata.Name, &r.Spec))
		},
		"ui-full": func(t *testing.T) *App {
			r := sampleSpec(t)
			u := r.Spec.UI
			u.Enabled, u.VIP = ptr(true), "/registry-ui:80"
			u.Constraints = [][]string{{"hostname", "LIKE", "10.0.0.5"}}
			u.Env = map[string]string{"REGISTRY_URL": "https://registry.marathon.l4lb.thisdcos.directory"}
			u.Labels = map[string]string{"HAPROXY_GROUP": "internal"}
			return mustApp(t)(BuildUIApp(r.Metadata.Name, &r.Spec))
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			app := build(t)
			got, err := json.MarshalIndent(app, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if err := validateApp(t, got); err != nil {
				t.Errorf("%s fails Marathon's schema: %v", name, err)
			}
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run go test -update after checking):\n%s", name, path, got)
			}
			// A freshly built app has no difference from itself as Marathon would echo it.
			if d := Diff(app, roundTrip(t, app)); len(d) != 0 {
				t.Errorf("diff against itself: %v", d)
			}
		})
	}
}

func mustApp(t *testing.T) func(*App, error) *App {
	return func(a *App, err error) *App {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
}

func roundTrip(t *testing.T, a *App) map[string]any {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBuildRegistryEssentials: the env form, used when nothing places a
// config file (no spec.nodes).
func TestBuildRegistryEssentials(t *testing.T) {
	r := sampleSpec(t)
	r.Spec.Nodes = nil
	app, err := BuildRegistryApp("registry", &r.Spec, RegistryInputs{HTTPSecret: "topsecret\n", ConfigHash: testConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	if app.Env[EnvHTTPSecret] != "topsecret" || !slices.Contains(app.SecretEnv, EnvHTTPSecret) {
		t.Errorf("secret env: %q, secret keys %v", app.Env[EnvHTTPSecret], app.SecretEnv)
	}
	if app.Env[EnvTLSCertificate] != "/certs/tls.crt" || app.Env[EnvTLSKey] != "/certs/tls.key" {
		t.Errorf("TLS env: %v", app.Env)
	}
	if app.Labels[OwnerLabel] != "registry" || app.Labels["HAPROXY_GROUP"] != "external" {
		t.Errorf("labels: %v", app.Labels)
	}
	pm := app.Container.PortMappings[0]
	if pm.ContainerPort != 5000 || pm.Labels[VIPLabel] != "192.168.0.1:443" {
		t.Errorf("port mapping: %+v", pm)
	}
	if app.Networks[0].Mode != "container/bridge" {
		t.Errorf("networks: %+v", app.Networks)
	}
	want := []Volume{{"/certs", "/etc/privateregistry/certs", "RO"}, {"/var/lib/registry", "/data/docker-registry", "RW"}}
	if !slices.Equal(app.Container.Volumes, want) {
		t.Errorf("volumes: %+v", app.Container.Volumes)
	}
	// A secret file that is empty is a mistake, not "no secret".
	if _, err := BuildRegistryApp("registry", &r.Spec, RegistryInputs{HTTPSecret: "  \n", ConfigHash: testConfigHash}); err == nil {
		t.Error("empty http secret accepted")
	}
}

// The spec validator rejects exactly the env keys the builder owns.
func TestReservedEnvMatchesValidation(t *testing.T) {
	if !slices.Equal(slices.Sorted(slices.Values(ReservedEnv)), slices.Sorted(slices.Values(v1alpha1.ReservedAppEnv))) {
		t.Fatalf("builder owns %v, validation reserves %v", ReservedEnv, v1alpha1.ReservedAppEnv)
	}
}

// testConfigHash stands for the hash of a rendered config.yml.
const testConfigHash = "c0nf1g0000000000000000000000000000000000000000000000000000000000"

// TestConfigFileAppCarriesNoSecret: in the config-file form the definition
// the operator sends names the file and carries no secret: no HTTP secret,
// password or bcrypt hash, not even the env keys that used to hold them.
func TestConfigFileAppCarriesNoSecret(t *testing.T) {
	r := sampleSpec(t)
	r.Spec.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{
		Users: []v1alpha1.HtpasswdUser{{Name: "ci", PasswordFile: "/etc/registry-operator/ci.password"}}}}
	v1alpha1.Default(r)
	app, err := BuildRegistryApp("registry", &r.Spec, RegistryInputs{HTTPSecret: "topsecret-http\n", ConfigHash: testConfigHash})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(app.Args, []string{"serve", "/certs/config.yml"}) {
		t.Errorf("args = %q, want serve /certs/config.yml", app.Args)
	}
	for _, k := range ReservedEnv {
		if _, ok := app.Env[k]; ok {
			t.Errorf("env %s is set; the config file says it", k)
		}
	}
	if app.Labels[ConfigLabel] != testConfigHash {
		t.Errorf("labels[%s] = %q", ConfigLabel, app.Labels[ConfigLabel])
	}
	b, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("topsecret")) || bcryptRE.Match(b) {
		t.Errorf("the app JSON carries a secret:\n%s", b)
	}
	if _, err := BuildRegistryApp("registry", &r.Spec, RegistryInputs{}); err == nil {
		t.Error("config-file form built without a config hash")
	}
}

var bcryptRE = regexp.MustCompile(`\$2[aby]\$`)
