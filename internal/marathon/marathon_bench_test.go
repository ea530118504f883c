package marathon

import (
	"encoding/json"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

func benchSpec(b *testing.B) *v1alpha1.Registry {
	b.Helper()
	raw, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var r v1alpha1.Registry
	if err := yaml.Unmarshal(raw, &r); err != nil {
		b.Fatal(err)
	}
	v1alpha1.Default(&r)
	return &r
}

func benchActual(b *testing.B) map[string]any {
	b.Helper()
	raw, err := os.ReadFile("testdata/marathon-registry.json")
	if err != nil {
		b.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkBuildRegistryApp: the desired app, built on every app pass.
func BenchmarkBuildRegistryApp(b *testing.B) {
	r := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret", ConfigHash: testConfigHash}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiff: the owned-field diff against what Marathon echoes back,
// in sync and with the image drifted.
func BenchmarkDiff(b *testing.B) {
	r := benchSpec(b)
	desired, err := BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file", ConfigHash: testConfigHash})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("in-sync", func(b *testing.B) {
		actual := benchActual(b)
		if d := Diff(desired, actual); len(d) != 0 {
			b.Fatalf("sample app not in sync: %v", d)
		}
		b.ReportAllocs()
		for b.Loop() {
			Diff(desired, actual)
		}
	})
	b.Run("drifted", func(b *testing.B) {
		actual := benchActual(b)
		obj(obj(actual["container"])["docker"])["image"] = "registry:2"
		actual["instances"] = 0.0
		if d := Diff(desired, actual); len(d) != 2 {
			b.Fatalf("want 2 differences, got %v", d)
		}
		b.ReportAllocs()
		for b.Loop() {
			Diff(desired, actual)
		}
	})
}

// BenchmarkUpdateBody: the PUT body that repairs a drifted app.
func BenchmarkUpdateBody(b *testing.B) {
	r := benchSpec(b)
	desired, err := BuildRegistryApp(r.Metadata.Name, &r.Spec, RegistryInputs{HTTPSecret: "s3cret-from-file", ConfigHash: testConfigHash})
	if err != nil {
		b.Fatal(err)
	}
	actual := benchActual(b)
	actual["instances"] = 0.0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UpdateBody(desired, actual); err != nil {
			b.Fatal(err)
		}
	}
}
