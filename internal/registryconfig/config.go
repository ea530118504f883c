package registryconfig

import (
	"time"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// Config is what the operator decides about the registry process. Every
// optional part is a pointer: nil leaves it out of the file.
type Config struct {
	// LogLevel is error, warn, info or debug; "" keeps the registry's own
	// (info).
	LogLevel string
	Storage  Storage
	HTTP     HTTP
	// Htpasswd, when set, makes every request authenticate against an
	// htpasswd file of bcrypt hashes.
	Htpasswd *Htpasswd
	// Health, when set, turns on the storage driver health check, whose
	// failure makes /v2/ answer 503.
	Health *Health
	// Proxy, when set, makes the registry a read-only pull-through cache
	// of one upstream registry.
	Proxy *Proxy
}

// Proxy is the upstream a pull-through cache fetches from. Username and
// Password are sent to the upstream; both empty: anonymous pulls.
type Proxy struct {
	RemoteURL string
	Username  string
	Password  secret.Value
}

// Storage is the filesystem driver and its maintenance.
type Storage struct {
	// RootDirectory is where the registry keeps its data, inside the
	// container (absolute).
	RootDirectory string
	// DeleteEnabled allows DELETE of manifests and blobs (needed before a
	// garbage collection can free anything).
	DeleteEnabled bool
	// UploadPurging, when nil, writes the registry's documented defaults
	// out (RegistryUploadPurging), so the file says what actually runs.
	UploadPurging *UploadPurging
	// ReadOnly refuses uploads (405) while pulls keep working: the window a
	// garbage collection needs.
	ReadOnly bool
}

// UploadPurging removes abandoned uploads.
type UploadPurging struct {
	Enabled bool
	// Age: uploads older than this are removed.
	Age time.Duration
	// Interval between purges.
	Interval time.Duration
	// DryRun only logs what would be removed.
	DryRun bool
}

// RegistryUploadPurging is docker-registry's own default, written out when
// Storage.UploadPurging is nil.
var RegistryUploadPurging = UploadPurging{Enabled: true, Age: 168 * time.Hour, Interval: 24 * time.Hour}

// HTTP is the registry's listener.
type HTTP struct {
	// Addr is host:port or :port inside the container.
	Addr string
	// Secret signs upload state; every instance behind one address must
	// share it, or an upload started on one fails on another.
	Secret secret.Value
	// TLS, when set, serves HTTPS.
	TLS *TLS
	// Debug, when set, opens the debug listener (health, pprof, metrics).
	// It must not be reachable from outside the cluster.
	Debug *Debug
}

// TLS names the certificate chain and key files inside the container.
type TLS struct {
	Certificate string
	Key         string
}

// Debug is the debug listener.
type Debug struct {
	Addr string
	// Prometheus serves the registry's metrics at MetricsPath.
	Prometheus bool
}

// MetricsPath is where the debug listener serves Prometheus metrics.
const MetricsPath = "/metrics"

// Htpasswd is basic authentication against a file of bcrypt hashes, which
// the registry re-reads when it changes.
type Htpasswd struct {
	Realm string
	// Path of the htpasswd file inside the container.
	Path string
}

// Health is the periodic storage driver check.
type Health struct {
	Interval time.Duration
	// Threshold is how many failures in a row make the registry unhealthy.
	Threshold int
}
