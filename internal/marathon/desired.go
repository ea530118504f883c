package marathon

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// Paths inside the registry container. The registry's own config names
// them through env, so they are fixed rather than configurable.
const (
	CertsContainerPath = "/certs"
	DataContainerPath  = "/var/lib/registry"
)

// Env keys the operator sets on the registry app. A spec env entry with one
// of these keys is overridden (validation should reject it).
const (
	EnvTLSCertificate = "REGISTRY_HTTP_TLS_CERTIFICATE"
	EnvTLSKey         = "REGISTRY_HTTP_TLS_KEY"
	EnvHTTPSecret     = "REGISTRY_HTTP_SECRET"
	EnvHTTPAddr       = "REGISTRY_HTTP_ADDR"
)

// ReservedEnv lists the env keys the builder owns on the registry app.
var ReservedEnv = []string{EnvTLSCertificate, EnvTLSKey, EnvHTTPSecret, EnvHTTPAddr}

// RegistryInputs are what the registry app's definition depends on besides
// the spec, read or rendered by the caller.
type RegistryInputs struct {
	// HTTPSecret is the content of spec.app.httpSecretFile ("" when the
	// spec names no file). Used only without a config file: then it has
	// to travel in env.
	HTTPSecret string
	// ConfigHash is the hash of the config.yml placement puts next to the
	// TLS files (ConfigFileMode). It goes into ConfigLabel, so a changed
	// file changes the definition and Marathon restarts the tasks once.
	ConfigHash string
}

// BuildRegistryApp returns the registry app spec.app describes. It is pure.
// owner is the registry's metadata.name.
//
// In ConfigFileMode the registry reads everything it is told (listen
// address, TLS paths, HTTP secret, auth) from config.yml in the certificate
// volume, so nothing secret travels in the definition; otherwise (no nodes
// to place a file on, or no TLS volume) the listen address, TLS paths and
// HTTP secret go into env as before.
func BuildRegistryApp(owner string, spec *v1alpha1.Spec, in RegistryInputs) (*App, error) {
	a := spec.App
	if a == nil {
		return nil, fmt.Errorf("spec.app is absent: nothing to build")
	}
	if ConfigFileMode(spec) {
		return buildConfigFileApp(owner, spec, in.ConfigHash)
	}
	httpSecret := in.HTTPSecret
	if a.HTTPSecretFile != "" && strings.TrimSpace(httpSecret) == "" {
		return nil, fmt.Errorf("spec.app.httpSecretFile %s is empty: write a random secret into it", a.HTTPSecretFile)
	}
	c := registryContainer(a)
	env := maps.Clone(a.Env)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvHTTPAddr] = "0.0.0.0:" + strconv.Itoa(a.ContainerPort)
	if spec.TLSEnabled() {
		c.Volumes = append(c.Volumes, Volume{ContainerPath: CertsContainerPath, HostPath: a.CertsHostPath, Mode: "RO"})
		env[EnvTLSCertificate] = CertsContainerPath + "/tls.crt"
		env[EnvTLSKey] = CertsContainerPath + "/tls.key"
	}
	c.Volumes = append(c.Volumes, Volume{ContainerPath: DataContainerPath, HostPath: a.DataHostPath, Mode: "RW"})
	var secretEnv []string
	if a.HTTPSecretFile != "" {
		env[EnvHTTPSecret] = strings.TrimSpace(httpSecret)
		secretEnv = []string{EnvHTTPSecret}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		if v1alpha1.SecretEnv(k) {
			secretEnv = append(secretEnv, k) // diffs and the plan show "<redacted>"
		}
	}
	return registryApp(owner, a, c, env, secretEnv), nil
}

func registryApp(owner string, a *v1alpha1.AppSpec, c *Container, env map[string]string, secretEnv []string) *App {
	app := &App{
		ID:          a.ID,
		Instances:   v1alpha1.InstancesOr(a.Instances, 1),
		CPUs:        a.CPUs,
		Mem:         a.Mem,
		Container:   c,
		Networks:    []Network{{Mode: "container/bridge"}},
		Env:         env,
		Labels:      ownedLabels(owner, a.Labels, env),
		Constraints: constraints(a.Constraints),
		SecretEnv:   secretEnv,
	}
	app.HealthChecks = []HealthCheck{healthCheck(a.HealthCheck)}
	if u := a.UpgradeStrategy; u != nil {
		app.UpgradeStrategy = &UpgradeStrategy{MinimumHealthCapacity: orOne(u.MinimumHealthCapacity),
			MaximumOverCapacity: orOne(u.MaximumOverCapacity)}
	}
	return app
}

// BuildUIApp returns the registry UI app spec.ui describes.
func BuildUIApp(owner string, spec *v1alpha1.Spec) (*App, error) {
	u := spec.UI
	if u == nil {
		return nil, fmt.Errorf("spec.ui is absent: nothing to build")
	}
	pm := PortMapping{ContainerPort: u.ContainerPort, Protocol: "tcp", Name: "ui"}
	if u.VIP != "" {
		pm.Labels = map[string]string{VIPLabel: u.VIP}
	}
	env := maps.Clone(u.Env)
	if env == nil {
		env = map[string]string{}
	}
	return &App{
		ID:          u.ID,
		Instances:   v1alpha1.InstancesOr(u.Instances, 1),
		CPUs:        u.CPUs,
		Mem:         u.Mem,
		Container:   &Container{Type: "DOCKER", Docker: Docker{Image: u.Image}, PortMappings: []PortMapping{pm}, Volumes: []Volume{}},
		Networks:    []Network{{Mode: "container/bridge"}},
		Env:         env,
		Labels:      ownedLabels(owner, u.Labels, env),
		Constraints: constraints(u.Constraints),
		// Marathon's defaults, stated so a human's change to them is seen.
		HealthChecks: []HealthCheck{healthCheck(&v1alpha1.HealthCheckSpec{Protocol: "TCP"})},
	}, nil
}

// ownedLabels merges the spec's labels with the operator's bookkeeping
// labels, which always win.
func ownedLabels(owner string, spec, env map[string]string) map[string]string {
	l := maps.Clone(spec)
	if l == nil {
		l = map[string]string{}
	}
	l[OwnerLabel] = owner
	l[OwnedLabelsLabel] = strings.Join(slices.Sorted(maps.Keys(spec)), ",")
	l[OwnedEnvLabel] = strings.Join(slices.Sorted(maps.Keys(env)), ",")
	return l
}

func healthCheck(h *v1alpha1.HealthCheckSpec) HealthCheck {
	if h == nil {
		h = &v1alpha1.HealthCheckSpec{}
	}
	hc := HealthCheck{Protocol: h.Protocol, Path: h.Path,
		GracePeriodSeconds: secondsOr(h.GracePeriod, 300), IntervalSeconds: secondsOr(h.Interval, 60),
		TimeoutSeconds: secondsOr(h.Timeout, 20), MaxConsecutiveFailures: h.MaxConsecutiveFailures}
	if hc.Protocol == "" {
		hc.Protocol = "TCP"
	}
	if hc.MaxConsecutiveFailures == 0 {
		hc.MaxConsecutiveFailures = 3 // the spec's 0 is "unset" (see v1alpha1.Default)
	}
	if !strings.Contains(hc.Protocol, "HTTP") {
		hc.Path = ""
	}
	return hc
}

func secondsOr(d v1alpha1.Duration, def int) int {
	if d.Duration <= 0 {
		return def
	}
	return int(d.Duration / time.Second)
}

func constraints(c [][]string) [][]string {
	out := make([][]string, 0, len(c))
	for _, x := range c {
		out = append(out, slices.Clone(x))
	}
	return out
}

func orOne(p *float64) float64 {
	if p == nil {
		return 1
	}
	return *p
}
