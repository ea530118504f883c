package marathon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// The example apps of docs/pull-credentials.md pass Marathon's schema and
// use the pull credentials where the operator keeps them by default.
func TestPullCredentialsExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../deploy/marathon/examples/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("deploy/marathon/examples holds %d apps, want the Docker containerizer and the UCR example", len(files))
	}
	type app struct {
		Container struct {
			Type   string
			Docker struct{ Image string }
		}
		Fetch []struct {
			URI     string
			Extract *bool
		}
	}
	byType := map[string]app{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateApp(t, b); err != nil {
			t.Errorf("%s does not pass Marathon's schema: %v", f, err)
			continue
		}
		var a app
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		if a.Container.Docker.Image == "" {
			t.Errorf("%s runs no image", f)
		}
		byType[a.Container.Type] = a
	}
	docker, ok := byType["DOCKER"]
	want := "file://" + v1alpha1.DefaultDockerTarGz
	if !ok || len(docker.Fetch) != 1 || docker.Fetch[0].URI != want ||
		(docker.Fetch[0].Extract != nil && !*docker.Fetch[0].Extract) {
		t.Errorf("the Docker containerizer example must fetch and extract %s: %+v", want, docker)
	}
	ucr, ok := byType["MESOS"]
	if !ok || len(ucr.Fetch) != 0 {
		t.Errorf("the UCR example must be a MESOS container pulling with the agent's --docker_config, no fetch: %+v", ucr)
	}
}
