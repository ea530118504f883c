package marathon

import (
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// Files in the certificate volume (CertsContainerPath) besides tls.crt and
// tls.key, placed there by the placement reconciler.
const (
	ConfigFile   = "config.yml"
	HtpasswdFile = "htpasswd"
	// ConfigContainerPath is the registry's config file inside the container.
	ConfigContainerPath = CertsContainerPath + "/" + ConfigFile
	// HtpasswdContainerPath is the htpasswd file inside the container.
	HtpasswdContainerPath = CertsContainerPath + "/" + HtpasswdFile
)

// ConfigLabel carries the hash of the config.yml the registry app's tasks
// are meant to run with (keyed: controllers/registry_config.go, so the
// label reveals nothing about the secrets in the file). The registry reads the file only at start, so a
// new hash is a definition change: one update, one rolling restart. The
// htpasswd file is not hashed here: the registry re-reads it by itself.
const ConfigLabel = "registry-operator/config"

// ConfigFileMode reports whether the registry app runs from a config.yml
// placed next to its TLS files (args: serve /certs/config.yml) rather than
// from env: whenever placement puts files on the registry's agents.
func ConfigFileMode(spec *v1alpha1.Spec) bool { return spec.PlacementEnabled() }

// buildConfigFileApp is the registry app reading config.yml: no listen
// address, TLS path or secret in env, only what the spec's env adds.
func buildConfigFileApp(owner string, spec *v1alpha1.Spec, configHash string) (*App, error) {
	if configHash == "" {
		return nil, errors.New("the registry app runs from config.yml, but no config was rendered (no hash given)")
	}
	a := spec.App
	c := registryContainer(a)
	c.Volumes = append(c.Volumes,
		Volume{ContainerPath: CertsContainerPath, HostPath: a.CertsHostPath, Mode: "RO"},
		Volume{ContainerPath: DataContainerPath, HostPath: a.DataHostPath, Mode: "RW"})
	env := maps.Clone(a.Env)
	if env == nil {
		env = map[string]string{}
	}
	var secretEnv []string
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		if v1alpha1.SecretEnv(k) {
			secretEnv = append(secretEnv, k)
		}
	}
	app := registryApp(owner, a, c, env, secretEnv)
	app.Args = []string{"serve", ConfigContainerPath}
	app.Labels[ConfigLabel] = configHash
	if a.MetricsPort != 0 {
		addMetricsPort(app, a.MetricsPort)
	}
	return app, nil
}

// The registry's debug listener (Prometheus metrics) as a second port.
const (
	MetricsPortName = "metrics"
	// MetricsScrapeLabel and MetricsPathLabel mark the port for a
	// scraper: Prometheus' marathon_sd_configs shows them as
	// __meta_marathon_port_mapping_label_prometheus_io_scrape and _path.
	MetricsScrapeLabel = "prometheus.io/scrape"
	MetricsPathLabel   = "prometheus.io/path"
	// metricsPath is registryconfig.MetricsPath (the debug listener's).
	metricsPath = "/metrics"
)

// addMetricsPort maps the debug listener on a random host port: no VIP
// label (the VIP is the registry's address), and Marathon-LB told to
// leave it out (HAPROXY_<n>_ENABLED), so the metrics and pprof it serves
// stay off every load balancer.
func addMetricsPort(app *App, port int) {
	c := app.Container
	c.PortMappings = append(c.PortMappings, PortMapping{ContainerPort: port, Protocol: "tcp", Name: MetricsPortName,
		Labels: map[string]string{MetricsScrapeLabel: "true", MetricsPathLabel: metricsPath}})
	app.Labels["HAPROXY_"+strconv.Itoa(len(c.PortMappings)-1)+"_ENABLED"] = "false"
}

func registryContainer(a *v1alpha1.AppSpec) *Container {
	pm := PortMapping{ContainerPort: a.ContainerPort, HostPort: a.HostPort, ServicePort: a.ServicePort,
		Protocol: "tcp", Name: "registry"}
	if a.VIP != "" {
		pm.Labels = map[string]string{VIPLabel: a.VIP}
	}
	return &Container{Type: "DOCKER", Docker: Docker{Image: a.Image}, PortMappings: []PortMapping{pm},
		Volumes: []Volume{}}
}
