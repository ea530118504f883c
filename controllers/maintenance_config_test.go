package controllers

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/internal/state"
)

// The read-only request and the metrics port reach the rendered config,
// and the read-only file is a different config (so the app restarts).
func TestRegistryConfigReadOnlyAndMetrics(t *testing.T) {
	e := newGCEnv(t, nil)
	pk := e.store.PKI()
	pk.ServerKey = []byte("server key")
	e.spec.App.MetricsPort = 5001
	rw, err := renderRegistryConfig(e.spec, pk, state.RegistryMaintenance{}, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := renderRegistryConfig(e.spec, pk, state.RegistryMaintenance{ReadOnly: true}, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if rw.Hash == ro.Hash {
		t.Fatal("the read-only config must differ from the writable one")
	}
	var f struct {
		Storage struct {
			Maintenance struct {
				ReadOnly map[string]any `yaml:"readonly"`
			} `yaml:"maintenance"`
		} `yaml:"storage"`
		HTTP struct {
			Debug struct {
				Addr       string         `yaml:"addr"`
				Prometheus map[string]any `yaml:"prometheus"`
			} `yaml:"debug"`
		} `yaml:"http"`
	}
	for _, c := range []struct {
		file []byte
		ro   bool
	}{{rw.File, false}, {ro.File, true}} {
		if err := yaml.Unmarshal(c.file, &f); err != nil {
			t.Fatal(err)
		}
		// registry 2.8 panics on a readonly section without its keys: the
		// whole map is always written.
		if en, ok := f.Storage.Maintenance.ReadOnly["enabled"].(bool); !ok || en != c.ro {
			t.Errorf("storage.maintenance.readonly = %v, want enabled: %v", f.Storage.Maintenance.ReadOnly, c.ro)
		}
		if f.HTTP.Debug.Addr != "0.0.0.0:5001" || f.HTTP.Debug.Prometheus["enabled"] != true {
			t.Errorf("http.debug = %+v", f.HTTP.Debug)
		}
	}
	if strings.Contains(string(ro.File), "server key") {
		t.Error("the config carries the server key")
	}
}
