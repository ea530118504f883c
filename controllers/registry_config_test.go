package controllers

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
)

// The config label is readable in Marathon: it must not let anyone test
// guesses of a weak httpSecretFile offline. Hashing the rendered file with
// a guessed secret (the label's own recipe, were it a plain hash) must not
// give the label, while a changed secret or config still changes it.
func TestConfigLabelDoesNotConfirmSecretGuesses(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "http.secret")
	must(t, os.WriteFile(secretFile, []byte("summer2026\n"), 0o600))
	e := newNodeEnv(t, func(s *v1alpha1.Spec) { s.App.HTTPSecretFile = secretFile })
	publishBundle(e.store, "CA1")
	pk := e.store.PKI()
	render := func() renderedConfig {
		t.Helper()
		c, err := renderRegistryConfig(e.spec, pk, state.RegistryMaintenance{}, os.ReadFile)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfg := render()
	// What an attacker computes for the right guess: everything but the
	// secret is known (the spec, the redacted rendering), so the file for
	// a guess is the real file.
	if cfg.Hash == state.Hash(cfg.File) {
		t.Fatal("the config label is the SHA-256 of config.yml: a guessed http.secret can be confirmed offline")
	}
	if again := render(); again.Hash != cfg.Hash {
		t.Fatal("the label of one config changes between renderings")
	}
	must(t, os.WriteFile(secretFile, []byte("winter2026\n"), 0o600))
	if render().Hash == cfg.Hash {
		t.Fatal("a new http.secret leaves the label as it was: the registry would not restart for it")
	}
	e.spec.App.Env = map[string]string{envDeleteEnabled: "true"}
	if render().Hash == cfg.Hash {
		t.Fatal("a changed config leaves the label as it was")
	}
	publishBundle(e.store, "CA2")
	if _, err := renderRegistryConfig(e.spec, state.PKI{}, state.RegistryMaintenance{}, os.ReadFile); err == nil {
		t.Fatal("a label without the server key to key it")
	}
}
