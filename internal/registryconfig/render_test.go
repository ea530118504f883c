package registryconfig

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yml")

const testSecret = "s3cr3t: #not-a-comment 'quoted' \"double\""

func minimal() Config {
	return Config{
		Storage: Storage{RootDirectory: "/var/lib/registry"},
		HTTP:    HTTP{Addr: ":5000", Secret: testSecret},
	}
}

func full() Config {
	return Config{
		LogLevel: "warn",
		Storage: Storage{RootDirectory: "/var/lib/registry", DeleteEnabled: true,
			UploadPurging: &UploadPurging{Enabled: true, Age: 72 * time.Hour, Interval: 90 * time.Minute, DryRun: true}},
		HTTP: HTTP{Addr: ":5000", Secret: testSecret,
			TLS:   &TLS{Certificate: "/certs/tls.crt", Key: "/certs/tls.key"},
			Debug: &Debug{Addr: "127.0.0.1:5001", Prometheus: true}},
		Htpasswd: &Htpasswd{Realm: "registry", Path: "/certs/htpasswd"},
		Health:   &Health{Interval: 10 * time.Second, Threshold: 3},
	}
}

func readOnly() Config {
	c := full()
	c.Storage.ReadOnly = true
	c.Storage.UploadPurging = nil
	c.HTTP.Debug.Prometheus = false
	return c
}

func TestGolden(t *testing.T) {
	for name, c := range map[string]Config{"minimal": minimal(), "full": full(), "readonly": readOnly()} {
		t.Run(name, func(t *testing.T) {
			got, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden.yml", got)
			red, err := Redacted(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".redacted.golden.yml", red)
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// TestDeterministic: equal configs built separately render equal bytes, so
// the hash the operator compares is stable across passes.
func TestDeterministic(t *testing.T) {
	a, err := Render(full())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, err := Render(full())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("two renders differ:\n%s\n%s", a, b)
		}
	}
}

// TestParsedShape reads the output back as YAML and checks what the
// registry will see, in particular the secret surviving YAML quoting and
// readonly being a map, never the leaf form that crashes docker-registry.
func TestParsedShape(t *testing.T) {
	for _, ro := range []bool{false, true} {
		c := full()
		c.Storage.ReadOnly = ro
		b, err := Render(c)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("output is not YAML: %v", err)
		}
		if doc["version"] != "0.1" {
			t.Errorf("version = %#v", doc["version"])
		}
		httpSec := doc["http"].(map[string]any)
		if httpSec["secret"] != testSecret {
			t.Errorf("http.secret did not survive quoting")
		}
		mnt := doc["storage"].(map[string]any)["maintenance"].(map[string]any)
		roMap, isMap := mnt["readonly"].(map[string]any)
		if !isMap || roMap["enabled"] != ro {
			t.Errorf("storage.maintenance.readonly = %#v, want the map {enabled: %v}", mnt["readonly"], ro)
		}
		up := mnt["uploadpurging"].(map[string]any)
		if up["age"] != "72h" || up["interval"] != "1h30m" || up["enabled"] != true || up["dryrun"] != true {
			t.Errorf("uploadpurging = %#v", up)
		}
	}
}

func TestRedactedNeverShowsSecret(t *testing.T) {
	for _, s := range []secret.Value{testSecret, "abc", "0.1", "registry"} {
		c := full()
		c.HTTP.Secret = s
		red, err := Redacted(c)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(red, &doc); err != nil {
			t.Fatal(err)
		}
		if got := doc["http"].(map[string]any)["secret"]; got != secret.Redacted {
			t.Errorf("secret %q: redacted http.secret = %#v", s, got)
		}
		if s == testSecret && strings.Contains(string(red), "s3cr3t") {
			t.Errorf("redacted output shows the secret:\n%s", red)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		168 * time.Hour: "168h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s", time.Hour + time.Second: "1h0m1s",
		5 * time.Minute: "5m", 1500 * time.Millisecond: "1.5s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%s) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("%q parses back as %s, %v", formatDuration(d), back, err)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		edit    func(*Config)
		wantErr string
	}{
		"log level":          {func(c *Config) { c.LogLevel = "verbose" }, `log.level "verbose"`},
		"relative root":      {func(c *Config) { c.Storage.RootDirectory = "data" }, "storage.filesystem.rootdirectory"},
		"no root":            {func(c *Config) { c.Storage.RootDirectory = "" }, "storage.filesystem.rootdirectory"},
		"purge age":          {func(c *Config) { c.Storage.UploadPurging.Age = 0 }, "uploadpurging.age"},
		"purge interval":     {func(c *Config) { c.Storage.UploadPurging.Interval = -time.Second }, "uploadpurging.interval"},
		"no addr":            {func(c *Config) { c.HTTP.Addr = "" }, "http.addr"},
		"addr without port":  {func(c *Config) { c.HTTP.Addr = "0.0.0.0" }, "http.addr"},
		"port out of range":  {func(c *Config) { c.HTTP.Addr = ":70000" }, "http.addr"},
		"empty secret":       {func(c *Config) { c.HTTP.Secret = "" }, "http.secret is empty"},
		"relative cert":      {func(c *Config) { c.HTTP.TLS.Certificate = "tls.crt" }, "http.tls.certificate"},
		"no key":             {func(c *Config) { c.HTTP.TLS.Key = "" }, "http.tls.key"},
		"debug addr":         {func(c *Config) { c.HTTP.Debug.Addr = "localhost" }, "http.debug.addr"},
		"debug on http port": {func(c *Config) { c.HTTP.Debug.Addr = ":5000" }, "port of its own"},
		"realm":              {func(c *Config) { c.Htpasswd.Realm = " " }, "auth.htpasswd.realm"},
		"realm quote":        {func(c *Config) { c.Htpasswd.Realm = `a"b` }, "auth.htpasswd.realm"},
		"htpasswd path":      {func(c *Config) { c.Htpasswd.Path = "htpasswd" }, "auth.htpasswd.path"},
		"health interval":    {func(c *Config) { c.Health.Interval = time.Millisecond }, "health.storagedriver.interval"},
		"health threshold":   {func(c *Config) { c.Health.Threshold = 0 }, "health.storagedriver.threshold"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := full()
			tc.edit(&c)
			for _, render := range []func(Config) ([]byte, error){Render, Redacted} {
				_, err := render(c)
				if err == nil {
					t.Fatal("rendered")
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not name %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error %q shows the secret", err)
				}
			}
		})
	}
	c := full()
	c.Storage.UploadPurging.Enabled = false
	c.Storage.UploadPurging.Age = 0
	if err := c.Validate(); err != nil {
		t.Errorf("disabled upload purging without an age: %v", err)
	}
	if err := minimal().Validate(); err != nil {
		t.Errorf("minimal: %v", err)
	}
}
