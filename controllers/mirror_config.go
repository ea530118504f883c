package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/secret"
	"github.com/registry-operator/registry-operator/internal/state"
)

// renderMirrorConfig renders the pull-through mirror's config.yml: the
// registry's TLS files, its own storage, and the upstream with the
// credentials read from their files now. The file goes only to the
// mirror's agents (0600); Marathon sees its hash, never its content.
func renderMirrorConfig(spec *v1alpha1.Spec, pk state.PKI, readFile func(string) ([]byte, error)) (renderedConfig, error) {
	m := spec.Mirror
	if len(pk.ServerKey) == 0 {
		return renderedConfig{}, errNoServerKey
	}
	// Derived like the registry's default secret, under another label:
	// the mirror's instances share it, and it never equals the registry's.
	sum := sha256.Sum256(append([]byte("registry-operator mirror http.secret\x00"), pk.ServerKey...))
	c := registryconfig.Config{
		Storage: registryconfig.Storage{RootDirectory: marathon.DataContainerPath},
		HTTP: registryconfig.HTTP{Addr: "0.0.0.0:" + strconv.Itoa(m.ContainerPort), Secret: secret.Value(hex.EncodeToString(sum[:])),
			TLS: &registryconfig.TLS{Certificate: marathon.CertsContainerPath + "/tls.crt",
				Key: marathon.CertsContainerPath + "/tls.key"}},
		Proxy: &registryconfig.Proxy{RemoteURL: m.RemoteURL},
	}
	if m.RemoteUsernameFile != "" {
		user, err := readPasswordFile("spec.mirror.remoteUsernameFile", m.RemoteUsernameFile, readFile)
		if err != nil {
			return renderedConfig{}, err
		}
		pw, err := readPasswordFile("spec.mirror.remotePasswordFile", m.RemotePasswordFile, readFile)
		if err != nil {
			return renderedConfig{}, err
		}
		c.Proxy.Username, c.Proxy.Password = user.Reveal(), pw
	}
	b, err := registryconfig.Render(c)
	if err != nil {
		return renderedConfig{}, err
	}
	return renderedConfig{File: b, Hash: state.Hash(b)}, nil
}
