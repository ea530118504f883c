package marathon

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	schemaOnce sync.Once
	appSchema  *jsonschema.Schema
	schemaErr  error
)

// validateApp checks doc against Marathon's schema-v1.7/AppDefinition.json
// (the copy the emulator embeds, read as a file so these tests do not
// depend on the emulator package).
func validateApp(t *testing.T, doc []byte) error {
	t.Helper()
	schemaOnce.Do(func() {
		var b []byte
		if b, schemaErr = os.ReadFile("../testing/marathonsim/schema/AppDefinition.json"); schemaErr != nil {
			return
		}
		var s map[string]any
		if schemaErr = json.Unmarshal(b, &s); schemaErr != nil {
			return
		}
		// "http://json-schema.org/schema#" names no draft; the keywords are draft-04's.
		delete(s, "$schema")
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft4)
		if schemaErr = c.AddResource("AppDefinition.json", s); schemaErr != nil {
			return
		}
		appSchema, schemaErr = c.Compile("AppDefinition.json")
	})
	if schemaErr != nil {
		t.Fatalf("compile AppDefinition.json: %v", schemaErr)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("decode app: %v", err)
	}
	return appSchema.Validate(v)
}

// The schema must be able to fail, or every "validates" below is hollow.
func TestSchemaRejectsInvalidApps(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":      `{"id":"/registry","bogus":1}`,
		"uppercase id":       `{"id":"/Registry"}`,
		"capacity above one": `{"id":"/r","upgradeStrategy":{"minimumHealthCapacity":2}}`,
		"bad volume mode":    `{"id":"/r","container":{"type":"DOCKER","docker":{"image":"x"},"volumes":[{"containerPath":"/a","hostPath":"/b","mode":"RX"}]}}`,
		"bad network mode":   `{"id":"/r","networks":[{"mode":"bridge"}]}`,
	} {
		if err := validateApp(t, []byte(doc)); err == nil {
			t.Errorf("%s: schema accepted %s", name, doc)
		}
	}
}

func TestHADeployFileValidates(t *testing.T) {
	b, err := os.ReadFile("../../deploy/marathon/registry-operator-ha.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateApp(t, b); err != nil {
		t.Fatalf("deploy/marathon/registry-operator-ha.json does not pass Marathon's schema: %v", err)
	}
	var app struct {
		Instances       int
		Labels          map[string]string
		UpgradeStrategy struct{ MinimumHealthCapacity, MaximumOverCapacity float64 }
	}
	if err := json.Unmarshal(b, &app); err != nil {
		t.Fatal(err)
	}
	if app.Instances < 2 || app.Labels["MARATHON_SINGLE_INSTANCE_APP"] != "" || app.UpgradeStrategy.MaximumOverCapacity != 0 {
		t.Errorf("HA app must run two instances, one replaced at a time: %+v", app)
	}
}

func TestDeployFileValidates(t *testing.T) {
	b, err := os.ReadFile("../../deploy/marathon/registry-operator.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := validateApp(t, b); err != nil {
		t.Fatalf("deploy/marathon/registry-operator.json does not pass Marathon's schema: %v", err)
	}
	var app struct {
		Instances       int
		UpgradeStrategy struct{ MinimumHealthCapacity, MaximumOverCapacity *float64 }
		HealthChecks    []struct{ Protocol, Path string }
		Container       struct {
			Volumes []struct {
				ContainerPath, HostPath, Mode string
				Persistent                    *struct{ Size int }
			}
		}
	}
	if err := json.Unmarshal(b, &app); err != nil {
		t.Fatal(err)
	}
	// Two operators must never run at once without a lock: kill before start.
	u := app.UpgradeStrategy
	if app.Instances != 1 || u.MinimumHealthCapacity == nil || *u.MinimumHealthCapacity != 0 ||
		u.MaximumOverCapacity == nil || *u.MaximumOverCapacity != 0 {
		t.Errorf("want one instance with upgradeStrategy 0/0, got %d and %+v", app.Instances, u)
	}
	if len(app.HealthChecks) != 1 || !strings.HasSuffix(app.HealthChecks[0].Path, "/healthz") {
		t.Errorf("want one health check on /healthz, got %+v", app.HealthChecks)
	}
	var persistent bool
	for _, v := range app.Container.Volumes {
		persistent = persistent || v.Persistent != nil
	}
	if !persistent {
		t.Error("the state dir must be on a persistent volume")
	}
}
