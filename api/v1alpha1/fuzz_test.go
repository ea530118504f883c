package v1alpha1

import (
	"os"
	"testing"
)

// FuzzParse: no input may panic the loader, and whatever it accepts must
// survive a second round of defaulting and validation unchanged.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../config/samples/registry.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  registry: {address: a:1}\n  tls: {}\n"))
	f.Add([]byte("spec: {nodes: {ssh: {port: [1]}}}"))
	f.Add([]byte("a: &x [*x]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if r != nil {
				t.Fatal("error with a result")
			}
			return
		}
		Default(r)
		if errs := Validate(r); len(errs) > 0 {
			t.Fatalf("accepted spec fails revalidation: %v", errs)
		}
	})
}
