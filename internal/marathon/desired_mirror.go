package marathon

import (
	"errors"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// BuildMirrorApp returns the pull-through mirror's app (spec.mirror): the
// registry image run from the config.yml placement puts beside its TLS
// files, like the registry app in ConfigFileMode. The upstream and its
// credentials are in that file only; the definition carries its hash.
func BuildMirrorApp(owner string, spec *v1alpha1.Spec, configHash string) (*App, error) {
	if spec.Mirror == nil {
		return nil, errors.New("spec.mirror is absent: nothing to build")
	}
	if configHash == "" {
		return nil, errors.New("the mirror app runs from config.yml, but no config was rendered (no hash given)")
	}
	a := spec.Mirror.AppSpec()
	c := registryContainer(a)
	c.Volumes = append(c.Volumes,
		Volume{ContainerPath: CertsContainerPath, HostPath: a.CertsHostPath, Mode: "RO"},
		Volume{ContainerPath: DataContainerPath, HostPath: a.DataHostPath, Mode: "RW"})
	env := map[string]string{}
	app := registryApp(owner, a, c, env, nil)
	app.Args = []string{"serve", ConfigContainerPath}
	app.Labels[ConfigLabel] = configHash
	return app, nil
}
