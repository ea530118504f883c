package registryconfig

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// The file's shape. Struct fields, not maps, so the key order is fixed and
// the same Config always gives the same bytes.
type file struct {
	Version string         `yaml:"version"`
	Log     *logSection    `yaml:"log,omitempty"`
	Storage storageSection `yaml:"storage"`
	HTTP    httpSection    `yaml:"http"`
	Auth    *authSection   `yaml:"auth,omitempty"`
	Health  *healthSection `yaml:"health,omitempty"`
	Proxy   *proxySection  `yaml:"proxy,omitempty"`
}

type proxySection struct {
	RemoteURL string `yaml:"remoteurl"`
	Username  string `yaml:"username,omitempty"`
	Password  string `yaml:"password,omitempty"`
}

type logSection struct {
	Level string `yaml:"level"`
}

type storageSection struct {
	Filesystem  filesystemSection  `yaml:"filesystem"`
	Delete      enabledSection     `yaml:"delete"`
	Maintenance maintenanceSection `yaml:"maintenance"`
}

type filesystemSection struct {
	RootDirectory string `yaml:"rootdirectory"`
}

type enabledSection struct {
	Enabled bool `yaml:"enabled"`
}

type maintenanceSection struct {
	UploadPurging uploadPurgingSection `yaml:"uploadpurging"`
	// Always the whole map: the leaf form (readonly: true) makes
	// docker-registry 2.8 panic at start.
	ReadOnly enabledSection `yaml:"readonly"`
}

type uploadPurgingSection struct {
	Enabled  bool   `yaml:"enabled"`
	Age      string `yaml:"age"`
	Interval string `yaml:"interval"`
	DryRun   bool   `yaml:"dryrun"`
}

type httpSection struct {
	Addr   string        `yaml:"addr"`
	Secret string        `yaml:"secret"`
	TLS    *tlsSection   `yaml:"tls,omitempty"`
	Debug  *debugSection `yaml:"debug,omitempty"`
}

type tlsSection struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
}

type debugSection struct {
	Addr       string             `yaml:"addr"`
	Prometheus *prometheusSection `yaml:"prometheus,omitempty"`
}

type prometheusSection struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
}

type authSection struct {
	Htpasswd htpasswdSection `yaml:"htpasswd"`
}

type htpasswdSection struct {
	Realm string `yaml:"realm"`
	Path  string `yaml:"path"`
}

type healthSection struct {
	StorageDriver storageDriverSection `yaml:"storagedriver"`
}

type storageDriverSection struct {
	Enabled   bool   `yaml:"enabled"`
	Interval  string `yaml:"interval"`
	Threshold int    `yaml:"threshold"`
}

// Render returns the config.yml for c, or an error naming the first field
// that docker-registry would reject or misread.
func Render(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshal(c, c.HTTP.Secret, false)
}

// Redacted renders c with the HTTP secret replaced by secret.Redacted: the
// form for plans, diffs and messages.
func Redacted(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return marshal(c, secret.Redacted, true)
}

func marshal(c Config, httpSecret secret.Value, redact bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	f := build(c, httpSecret)
	if f.Proxy != nil && redact && f.Proxy.Password != "" {
		f.Proxy.Password = secret.Redacted
	}
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode registry config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode registry config: %w", err)
	}
	return buf.Bytes(), nil
}

func build(c Config, httpSecret secret.Value) file {
	f := file{
		Version: "0.1",
		Storage: buildStorage(c.Storage),
		HTTP:    buildHTTP(c.HTTP, httpSecret),
	}
	if c.LogLevel != "" {
		f.Log = &logSection{Level: c.LogLevel}
	}
	if a := c.Htpasswd; a != nil {
		f.Auth = &authSection{Htpasswd: htpasswdSection{Realm: a.Realm, Path: a.Path}}
	}
	if h := c.Health; h != nil {
		f.Health = &healthSection{StorageDriver: storageDriverSection{Enabled: true,
			Interval: formatDuration(h.Interval), Threshold: h.Threshold}}
	}
	if p := c.Proxy; p != nil {
		f.Proxy = &proxySection{RemoteURL: p.RemoteURL, Username: p.Username, Password: p.Password.Reveal()}
	}
	return f
}

func buildStorage(s Storage) storageSection {
	up := RegistryUploadPurging
	if s.UploadPurging != nil {
		up = *s.UploadPurging
	}
	return storageSection{
		Filesystem: filesystemSection{RootDirectory: s.RootDirectory},
		Delete:     enabledSection{Enabled: s.DeleteEnabled},
		Maintenance: maintenanceSection{
			UploadPurging: uploadPurgingSection{Enabled: up.Enabled, Age: formatDuration(up.Age),
				Interval: formatDuration(up.Interval), DryRun: up.DryRun},
			ReadOnly: enabledSection{Enabled: s.ReadOnly},
		},
	}
}

func buildHTTP(h HTTP, httpSecret secret.Value) httpSection {
	out := httpSection{Addr: h.Addr, Secret: httpSecret.Reveal()}
	if h.TLS != nil {
		out.TLS = &tlsSection{Certificate: h.TLS.Certificate, Key: h.TLS.Key}
	}
	if d := h.Debug; d != nil {
		out.Debug = &debugSection{Addr: d.Addr}
		if d.Prometheus {
			out.Debug.Prometheus = &prometheusSection{Enabled: true, Path: MetricsPath}
		}
	}
	return out
}

// formatDuration writes durations the way people do (168h, 90m, 10s), which
// the registry parses with time.ParseDuration like Go's longer form.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
