package v1alpha1

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// A refused URL is quoted in the error, and errors reach logs and the status
// page: the password must not be in it.
func TestURLCredentialsNotEchoed(t *testing.T) {
	for _, u := range []string{"http://admin:hunter2@marathon.mesos:8080", "ftp://admin:hunter2@x", "http://hunter2@m:8080"} {
		r := sample(t)
		Default(r)
		r.Spec.Marathon.URLs = []string{u}
		r.Spec.Nodes.Mesos.URL = u
		errs := Validate(r)
		if len(errs) == 0 {
			t.Fatalf("%s accepted", u)
		}
		if strings.Contains(errs.Error(), "hunter2") {
			t.Errorf("error shows the secret:\n%v", errs)
		}
	}
}

func TestExplicitZeroRefused(t *testing.T) {
	const head = "apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n"
	nodes := "  nodes:\n    static: [198.18.0.2]\n    ssh: {privateKeyFile: /k, knownHostsFile: /kh, %s}\n"
	tests := map[string]struct{ yaml, path string }{
		"ssh port":           {head + strings.Replace(nodes, "%s", "port: 0", 1), "spec.nodes.ssh.port"},
		"ssh concurrency":    {head + strings.Replace(nodes, "%s", "concurrency: 0", 1), "spec.nodes.ssh.concurrency"},
		"ssh concurrency 00": {head + strings.Replace(nodes, "%s", "concurrency: 0x0", 1), "spec.nodes.ssh.concurrency"},
		"ssh keepAlive":      {head + strings.Replace(nodes, "%s", "keepAlive: 0s", 1), "spec.nodes.ssh.keepAlive"},
		"container port":     {head + "  registry: {address: r:5000}\n  app: {containerPort: 0}\n", "spec.app.containerPort"},
		"ui container port":  {head + "  ui: {containerPort: 0}\n", "spec.ui.containerPort"},
		"app cpus":           {head + "  registry: {address: r:5000}\n  app: {cpus: 0.0}\n", "spec.app.cpus"},
		"app mem":            {head + "  registry: {address: r:5000}\n  app: {mem: -0}\n", "spec.app.mem"},
		"max failures":       {head + "  registry: {address: r:5000}\n  app: {healthCheck: {maxConsecutiveFailures: 0}}\n", "spec.app.healthCheck.maxConsecutiveFailures"},
		"ca duration":        {head + "  registry: {address: r:5000}\n  tls: {ca: {duration: 0h}}\n", "spec.tls.ca.duration"},
		"reconcile interval": {head + "  reconcile: {interval: 0s}\n", "spec.reconcile.interval"},
		"marathon timeout":   {head + "  marathon: {urls: [\"http://m:8080\"], timeout: 0ms}\n", "spec.marathon.timeout"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			fes, ok := err.(FieldErrors)
			if !ok {
				t.Fatalf("want FieldErrors, got %T %v", err, err)
			}
			for _, e := range fes {
				if e.Path == tc.path && strings.Contains(e.Reason, "must not be 0") && e.Line > 0 {
					return
				}
			}
			t.Fatalf("want %s: must not be 0, got %v", tc.path, fes)
		})
	}
}

// Absent still means the default, and 0 stays a value where it is one.
func TestZeroWhereMeaningful(t *testing.T) {
	r, err := Parse([]byte(`apiVersion: registry-operator/v1alpha1
kind: Registry
spec:
  marathon: {urls: ["http://127.0.0.1:8080"]}
  nodes:
    static: [198.18.0.2]
    ssh: {privateKeyFile: /k, knownHostsFile: /kh, port: null}
  registry: {address: "198.18.0.2:443"}
  app: {instances: 0, hostPort: 0, servicePort: 0, upgradeStrategy: {minimumHealthCapacity: 0, maximumOverCapacity: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Spec.Nodes.SSH.Port; p != DefaultSSHPort {
		t.Errorf("absent port = %d", p)
	}
	if c := r.Spec.Nodes.SSH.Concurrency; c != DefaultSSHConcurrency {
		t.Errorf("absent concurrency = %d", c)
	}
	if n := *r.Spec.App.Instances; n != 0 {
		t.Errorf("instances: 0 became %d", n)
	}
}

// Every registry.address validation accepts, the trust reconcilers can
// turn into certs.d directory names.
func FuzzRegistryAddressRule(f *testing.F) {
	for _, a := range []string{"registry.local:5000", "registry.local.:5000", "[::1]:443", "192.168.0.1:443",
		"a:1", "reg.example:0443", "[::ffff:1.2.3.4]:5000", "x-.y:5000", "UPPER.case:1"} {
		f.Add(a)
	}
	r := sample(f)
	Default(r)
	f.Fuzz(func(t *testing.T, addr string) {
		r.Spec.Registry.Address = addr
		for _, e := range Validate(r) {
			if e.Path == "spec.registry.address" {
				return
			}
		}
		if _, err := RegistryDirNames(addr); err != nil {
			t.Fatalf("validation accepts %q but the trust reconciler refuses it: %v", addr, err)
		}
	})
}

// Redact hides URL user info and secret env values and leaves r alone.
func TestRedact(t *testing.T) {
	r := sample(t)
	Default(r)
	r.Spec.Marathon.URLs = []string{"http://admin:hunter2@m:8080", "http://m2:8080"}
	r.Spec.Nodes.Mesos.URL = "http://tok-hunter2@leader.mesos:5050"
	r.Spec.App.Env = map[string]string{"REGISTRY_STORAGE_S3_SECRETKEY": "hunter2", "AWS_ACCESSKEY": "hunter2", "REGION": "eu"}
	r.Spec.UI.Env = map[string]string{"REGISTRY_PASSWORD": "hunter2"}
	out, err := yaml.Marshal(r.Redact())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Errorf("redacted spec shows a secret:\n%s", out)
	}
	for _, want := range []string{"http://redacted@m:8080", "http://m2:8080", "REGION: eu"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("redacted spec lacks %q:\n%s", want, out)
		}
	}
	if r.Spec.Marathon.URLs[0] != "http://admin:hunter2@m:8080" || r.Spec.App.Env["AWS_ACCESSKEY"] != "hunter2" {
		t.Error("Redact changed the spec in force")
	}
}
