package controllers

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/state"
)

// envDeleteEnabled is how specs turned on manifest deletion before the
// config file existed; the file says the same so it stays the one source.
const envDeleteEnabled = "REGISTRY_STORAGE_DELETE_ENABLED"

// errNoServerKey: the config cannot be rendered before the certificate
// reconciler has issued the server certificate (its key seeds the default
// HTTP secret and keys the config's label, and the registry cannot serve
// TLS without it anyway).
var errNoServerKey = errors.New("the registry's config.yml waits for the server certificate (certificates reconciler)")

// renderedConfig is the registry's config.yml for the spec in force.
type renderedConfig struct {
	File []byte
	Hash string
}

// renderRegistryConfig renders config.yml for the registry app: listen
// address, TLS files and storage inside the container, the HTTP secret,
// htpasswd auth when spec.auth is set, and read-only while the
// maintenance reconciler asks for it. Placement writes it and the app
// reconciler hashes it, from the same function, so both mean one file.
func renderRegistryConfig(spec *v1alpha1.Spec, pk state.PKI, m state.RegistryMaintenance, readFile func(string) ([]byte, error)) (renderedConfig, error) {
	c, err := registryConfigFor(spec, pk, readFile)
	if err != nil {
		return renderedConfig{}, err
	}
	// A garbage-collection window (maintenance reconciler): uploads are
	// refused while pulls go on.
	c.Storage.ReadOnly = m.ReadOnly
	b, err := registryconfig.Render(c)
	if err != nil {
		return renderedConfig{}, err
	}
	if len(pk.ServerKey) == 0 {
		return renderedConfig{}, errNoServerKey
	}
	return renderedConfig{File: b, Hash: configLabelHash(b, pk.ServerKey)}, nil
}

// registryConfigFor is the registry's configuration inside its container.
func registryConfigFor(spec *v1alpha1.Spec, pk state.PKI, readFile func(string) ([]byte, error)) (registryconfig.Config, error) {
	a := spec.App
	httpSecret, err := registryHTTPSecret(a, pk, readFile)
	if err != nil {
		return registryconfig.Config{}, err
	}
	c := registryconfig.Config{
		Storage: registryconfig.Storage{RootDirectory: marathon.DataContainerPath,
			DeleteEnabled: strings.EqualFold(strings.TrimSpace(a.Env[envDeleteEnabled]), "true")},
		HTTP: registryconfig.HTTP{Addr: "0.0.0.0:" + strconv.Itoa(a.ContainerPort), Secret: httpSecret,
			TLS: &registryconfig.TLS{Certificate: marathon.CertsContainerPath + "/tls.crt",
				Key: marathon.CertsContainerPath + "/tls.key"}},
	}
	if spec.AuthEnabled() {
		c.Htpasswd = &registryconfig.Htpasswd{Realm: spec.Auth.Htpasswd.Realm, Path: marathon.HtpasswdContainerPath}
	}
	if a.MetricsPort != 0 {
		// The app maps it as a port of its own (marathon.MetricsPortName).
		c.HTTP.Debug = &registryconfig.Debug{Addr: "0.0.0.0:" + strconv.Itoa(a.MetricsPort), Prometheus: true}
	}
	return c, nil
}

// configLabelHash identifies a config.yml in the app's ConfigLabel, which
// anyone who can read Marathon sees. A plain SHA-256 of the file would let
// them test guesses of a weak httpSecretFile offline, so it is an
// HMAC-SHA256 keyed with the server key, which only the operator and the
// registry's agents hold: any change of the file still changes it.
func configLabelHash(file, serverKey []byte) string {
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte("registry-operator config label\x00"))
	m.Write(file)
	return hex.EncodeToString(m.Sum(nil))
}

// registryHTTPSecret is the content of spec.app.httpSecretFile, or without
// one a secret derived from the server key: every instance shares it (an
// upload started on one finishes on another), it never leaves the agents
// that already hold the key, and it changes with the key, at a rotation
// that restarts the registry anyway.
func registryHTTPSecret(a *v1alpha1.AppSpec, pk state.PKI, readFile func(string) ([]byte, error)) (secret.Value, error) {
	if f := a.HTTPSecretFile; f != "" {
		b, err := readFile(f)
		if err != nil {
			return "", fmt.Errorf("read spec.app.httpSecretFile: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("spec.app.httpSecretFile %s is empty: write a random secret into it", f)
		}
		return secret.Value(s), nil
	}
	if len(pk.ServerKey) == 0 {
		return "", errNoServerKey
	}
	sum := sha256.Sum256(append([]byte("registry-operator http.secret\x00"), pk.ServerKey...))
	return secret.Value(hex.EncodeToString(sum[:])), nil
}

// readPasswordFile returns the first line of a user's passwordFile, the
// plain password; a missing or empty file is an error naming the field.
func readPasswordFile(field, path string, readFile func(string) ([]byte, error)) (secret.Value, error) {
	b, err := readFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w (write the user's password into it, one line)", field, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pw := strings.TrimRight(string(line), "\r")
	if strings.TrimSpace(pw) == "" {
		return "", fmt.Errorf("%s %s: the first line is empty: write the user's password into it", field, path)
	}
	return secret.Value(pw), nil
}
