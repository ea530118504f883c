// Package v1alpha1 holds the RegistrySpec: the one declarative document the
// operator drives the cluster toward. It does no I/O beyond reading the file
// in Load; defaults live in defaults.go and every rule in validate.go.
package v1alpha1

// APIVersion and Kind are the only values accepted in a config file's header.
const (
	APIVersion = "registry-operator/v1alpha1"
	Kind       = "Registry"
)

// Registry is the whole config file.
type Registry struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`
}

// Metadata names the registry; the name labels the apps the operator owns.
type Metadata struct {
	Name string `yaml:"name" json:"name"`
}

// Spec is the desired state. A nil section is absent: its reconcilers are off.
type Spec struct {
	Marathon       *MarathonSpec       `yaml:"marathon,omitempty" json:"marathon,omitempty"`
	Nodes          *NodesSpec          `yaml:"nodes,omitempty" json:"nodes,omitempty"`
	Registry       *RegistryEndpoint   `yaml:"registry,omitempty" json:"registry,omitempty"`
	TLS            *TLSSpec            `yaml:"tls,omitempty" json:"tls,omitempty"`
	Trust          *TrustSpec          `yaml:"trust,omitempty" json:"trust,omitempty"`
	Conntrack      *ConntrackSpec      `yaml:"conntrack,omitempty" json:"conntrack,omitempty"`
	App            *AppSpec            `yaml:"app,omitempty" json:"app,omitempty"`
	UI             *UISpec             `yaml:"ui,omitempty" json:"ui,omitempty"`
	Reconcile      ReconcileSpec       `yaml:"reconcile" json:"reconcile"`
	LeaderElection *LeaderElectionSpec `yaml:"leaderElection,omitempty" json:"leaderElection,omitempty"`
	// Auth makes the registry private (absent: anyone who reaches it may
	// push, pull and delete).
	Auth *AuthSpec `yaml:"auth,omitempty" json:"auth,omitempty"`
	// PullCredentials is what every agent gets so pulls work with auth on.
	// Defaulted (every form at its default path) when auth and nodes are set.
	PullCredentials *PullCredentialsSpec `yaml:"pullCredentials,omitempty" json:"pullCredentials,omitempty"`
	// Maintenance schedules garbage collection (maintenance.go).
	Maintenance *MaintenanceSpec `yaml:"maintenance,omitempty" json:"maintenance,omitempty"`
	// Mirror runs a pull-through cache of an upstream registry (mirror.go).
	Mirror *MirrorSpec `yaml:"mirror,omitempty" json:"mirror,omitempty"`
}

// MarathonSpec says how to reach Marathon. Several URLs fail over in order.
type MarathonSpec struct {
	URLs          []string   `yaml:"urls" json:"urls"`
	Timeout       Duration   `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	BasicAuth     *BasicAuth `yaml:"basicAuth,omitempty" json:"basicAuth,omitempty"`
	DCOSTokenFile string     `yaml:"dcosTokenFile,omitempty" json:"dcosTokenFile,omitempty"`
	// EventStream subscribes to /v2/events so changes are seen before the
	// next resync. Default true.
	EventStream *bool `yaml:"eventStream,omitempty" json:"eventStream,omitempty"`
}

// BasicAuth reads the password from a file so it never sits in the spec.
type BasicAuth struct {
	Username     string `yaml:"username" json:"username"`
	PasswordFile string `yaml:"passwordFile" json:"passwordFile"`
}

// NodesSpec lists where agents come from and how to reach them.
type NodesSpec struct {
	Mesos  *MesosSpec `yaml:"mesos,omitempty" json:"mesos,omitempty"`
	Static []string   `yaml:"static,omitempty" json:"static,omitempty"`
	SSH    SSHSpec    `yaml:"ssh" json:"ssh"`
}

// MesosSpec points at a Mesos master; agents come from GET /master/slaves.
type MesosSpec struct {
	URL string `yaml:"url" json:"url"`
}

// Host key policies.
const (
	HostKeyStrict    = "strict"
	HostKeyAcceptNew = "acceptNew"
)

// SSHSpec configures the node executor.
type SSHSpec struct {
	User           string   `yaml:"user,omitempty" json:"user,omitempty"`
	Port           int      `yaml:"port,omitempty" json:"port,omitempty"`
	PrivateKeyFile string   `yaml:"privateKeyFile" json:"privateKeyFile"`
	KnownHostsFile string   `yaml:"knownHostsFile" json:"knownHostsFile"`
	HostKeyPolicy  string   `yaml:"hostKeyPolicy,omitempty" json:"hostKeyPolicy,omitempty"`
	Sudo           *bool    `yaml:"sudo,omitempty" json:"sudo,omitempty"`
	Concurrency    int      `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	ConnectTimeout Duration `yaml:"connectTimeout,omitempty" json:"connectTimeout,omitempty"`
	CommandTimeout Duration `yaml:"commandTimeout,omitempty" json:"commandTimeout,omitempty"`
	// SFTPServer overrides detection of the node's sftp-server binary.
	SFTPServer string `yaml:"sftpServer,omitempty" json:"sftpServer,omitempty"`
	// KeepAlive: a kept connection no pass used for this long, plus a
	// quarter (the resync's jitter), gets an SSH keepalive request.
	KeepAlive Duration `yaml:"keepAlive,omitempty" json:"keepAlive,omitempty"`
}

// RegistryEndpoint is how clients name the registry.
type RegistryEndpoint struct {
	Address     string   `yaml:"address" json:"address"`
	DNSNames    []string `yaml:"dnsNames,omitempty" json:"dnsNames,omitempty"`
	IPAddresses []string `yaml:"ipAddresses,omitempty" json:"ipAddresses,omitempty"`
}

// TLS modes.
const (
	TLSSelfSigned = "selfSigned"
	TLSProvided   = "provided"
	TLSInsecure   = "insecure"
)

// TLSSpec says where certificates come from and where their state lives.
type TLSSpec struct {
	Mode         string        `yaml:"mode,omitempty" json:"mode,omitempty"`
	StateDir     string        `yaml:"stateDir,omitempty" json:"stateDir,omitempty"`
	KeyAlgorithm string        `yaml:"keyAlgorithm,omitempty" json:"keyAlgorithm,omitempty"`
	CA           CASpec        `yaml:"ca" json:"ca"`
	Server       CertSpec      `yaml:"server" json:"server"`
	Provided     *ProvidedCert `yaml:"provided,omitempty" json:"provided,omitempty"`
}

// CertSpec is a certificate's lifetime.
type CertSpec struct {
	CommonName  string   `yaml:"commonName,omitempty" json:"commonName,omitempty"`
	Duration    Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	RenewBefore Duration `yaml:"renewBefore,omitempty" json:"renewBefore,omitempty"`
}

// CASpec is the CA's lifetime plus the knobs of CA rotation.
type CASpec struct {
	CertSpec `yaml:",inline" json:",inline"`
	// RegenerateOnCorruption allows replacing CA state that cannot be parsed.
	// Off by default: a new CA changes the trust anchor of the whole cluster.
	RegenerateOnCorruption bool `yaml:"regenerateOnCorruption,omitempty" json:"regenerateOnCorruption,omitempty"`
	// RotationOverlap is the least time old and new CA are both published
	// before the server certificate switches to the new CA, even when every
	// node already reports the new bundle.
	RotationOverlap Duration `yaml:"rotationOverlap,omitempty" json:"rotationOverlap,omitempty"`
}

// ProvidedCert names files issued elsewhere (tls.mode: provided).
type ProvidedCert struct {
	CertFile string `yaml:"certFile" json:"certFile"`
	KeyFile  string `yaml:"keyFile" json:"keyFile"`
	CAFile   string `yaml:"caFile" json:"caFile"`
}

// Container runtimes whose trust the node trust reconciler manages.
const (
	RuntimeDocker     = "docker"
	RuntimeUCR        = "ucr"
	RuntimeContainers = "containers"
	RuntimeContainerd = "containerd"
)

// TrustSpec: every agent trusts the registry's CA.
type TrustSpec struct {
	Enabled            *bool    `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	CertsDirs          []string `yaml:"certsDirs,omitempty" json:"certsDirs,omitempty"`
	Runtimes           []string `yaml:"runtimes,omitempty" json:"runtimes,omitempty"`
	UCRCertsDir        string   `yaml:"ucrCertsDir,omitempty" json:"ucrCertsDir,omitempty"`
	SystemStore        bool     `yaml:"systemStore,omitempty" json:"systemStore,omitempty"`
	AllowDockerRestart bool     `yaml:"allowDockerRestart,omitempty" json:"allowDockerRestart,omitempty"`
}

// ConntrackSpec: nf_conntrack_tcp_be_liberal for the layer-4 load balancer.
type ConntrackSpec struct {
	Enabled         *bool  `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	TCPBeLiberal    *bool  `yaml:"tcpBeLiberal,omitempty" json:"tcpBeLiberal,omitempty"`
	PersistFile     string `yaml:"persistFile,omitempty" json:"persistFile,omitempty"`
	ModulesLoadFile string `yaml:"modulesLoadFile,omitempty" json:"modulesLoadFile,omitempty"`
}

// AppSpec is the registry's Marathon app.
type AppSpec struct {
	Enabled       *bool      `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	ID            string     `yaml:"id,omitempty" json:"id,omitempty"`
	Image         string     `yaml:"image,omitempty" json:"image,omitempty"`
	Instances     *int       `yaml:"instances,omitempty" json:"instances,omitempty"`
	CPUs          float64    `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Mem           float64    `yaml:"mem,omitempty" json:"mem,omitempty"`
	Constraints   [][]string `yaml:"constraints,omitempty" json:"constraints,omitempty"`
	ContainerPort int        `yaml:"containerPort,omitempty" json:"containerPort,omitempty"`
	HostPort      int        `yaml:"hostPort,omitempty" json:"hostPort,omitempty"`
	ServicePort   int        `yaml:"servicePort,omitempty" json:"servicePort,omitempty"`
	// MetricsPort opens the registry's debug listener with its Prometheus
	// metrics on this container port, a second port of the app that gets
	// no VIP and no Marathon-LB frontend (maintenance.go). 0: off.
	MetricsPort       int               `yaml:"metricsPort,omitempty" json:"metricsPort,omitempty"`
	VIP               string            `yaml:"vip,omitempty" json:"vip,omitempty"`
	CertsHostPath     string            `yaml:"certsHostPath,omitempty" json:"certsHostPath,omitempty"`
	DataHostPath      string            `yaml:"dataHostPath,omitempty" json:"dataHostPath,omitempty"`
	HTTPSecretFile    string            `yaml:"httpSecretFile,omitempty" json:"httpSecretFile,omitempty"`
	Labels            map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Env               map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	HealthCheck       *HealthCheckSpec  `yaml:"healthCheck,omitempty" json:"healthCheck,omitempty"`
	UpgradeStrategy   *UpgradeStrategy  `yaml:"upgradeStrategy,omitempty" json:"upgradeStrategy,omitempty"`
	DeploymentTimeout Duration          `yaml:"deploymentTimeout,omitempty" json:"deploymentTimeout,omitempty"`
}

// HealthCheckSpec is the registry app's Marathon health check.
type HealthCheckSpec struct {
	Protocol               string   `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	Path                   string   `yaml:"path,omitempty" json:"path,omitempty"`
	GracePeriod            Duration `yaml:"gracePeriod,omitempty" json:"gracePeriod,omitempty"`
	Interval               Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Timeout                Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	MaxConsecutiveFailures int      `yaml:"maxConsecutiveFailures,omitempty" json:"maxConsecutiveFailures,omitempty"`
}

// UpgradeStrategy mirrors Marathon's; nil fields keep Marathon's defaults.
type UpgradeStrategy struct {
	MinimumHealthCapacity *float64 `yaml:"minimumHealthCapacity,omitempty" json:"minimumHealthCapacity,omitempty"`
	MaximumOverCapacity   *float64 `yaml:"maximumOverCapacity,omitempty" json:"maximumOverCapacity,omitempty"`
}

// UISpec is the optional registry web UI app.
type UISpec struct {
	Enabled       *bool             `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	ID            string            `yaml:"id,omitempty" json:"id,omitempty"`
	Image         string            `yaml:"image,omitempty" json:"image,omitempty"`
	Instances     *int              `yaml:"instances,omitempty" json:"instances,omitempty"`
	CPUs          float64           `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Mem           float64           `yaml:"mem,omitempty" json:"mem,omitempty"`
	Constraints   [][]string        `yaml:"constraints,omitempty" json:"constraints,omitempty"`
	ContainerPort int               `yaml:"containerPort,omitempty" json:"containerPort,omitempty"`
	VIP           string            `yaml:"vip,omitempty" json:"vip,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Env           map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
}

// Reconcile modes.
const (
	ModeEnforce = "enforce"
	ModeReport  = "report"
)

// ReconcileSpec sets the loop's pace and whether it may change anything.
type ReconcileSpec struct {
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Mode     string   `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Timeout bounds one reconcile of one key.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// State stores for leader election.
const (
	StateStoreZooKeeper = "zookeeper"
	StateStoreSharedDir = "sharedDir"
)

// LeaderElectionSpec turns on ZooKeeper leader election (absent: one instance).
type LeaderElectionSpec struct {
	ZooKeeper      []string `yaml:"zookeeper" json:"zookeeper"`
	Path           string   `yaml:"path,omitempty" json:"path,omitempty"`
	SessionTimeout Duration `yaml:"sessionTimeout,omitempty" json:"sessionTimeout,omitempty"`
	// StateStore is where the PKI state lives so every instance reads it.
	StateStore string `yaml:"stateStore,omitempty" json:"stateStore,omitempty"`
	// DigestFile holds "user:password" for the digest ACL on the state znodes.
	DigestFile string `yaml:"digestFile,omitempty" json:"digestFile,omitempty"`
}

// Enabled reports whether an optional switch is on; absent means on.
func enabled(b *bool) bool { return b == nil || *b }

// TLSEnabled: the certificate reconciler runs.
func (s *Spec) TLSEnabled() bool {
	return s.TLS != nil && s.TLS.Mode != TLSInsecure
}

// NodesEnabled: agents are discovered and reached over SSH.
func (s *Spec) NodesEnabled() bool { return s.Nodes != nil }

// TrustEnabled: the node trust reconciler runs.
func (s *Spec) TrustEnabled() bool {
	return s.Nodes != nil && s.Trust != nil && enabled(s.Trust.Enabled)
}

// ConntrackEnabled: the conntrack reconciler runs.
func (s *Spec) ConntrackEnabled() bool {
	return s.Nodes != nil && s.Conntrack != nil && enabled(s.Conntrack.Enabled)
}

// AppEnabled: the registry app reconciler runs.
func (s *Spec) AppEnabled() bool {
	return s.Marathon != nil && s.App != nil && enabled(s.App.Enabled)
}

// PlacementEnabled: tls.crt/tls.key are copied to the registry's agents.
func (s *Spec) PlacementEnabled() bool {
	return s.AppEnabled() && s.Nodes != nil && s.TLSEnabled()
}

// UIEnabled: the UI app reconciler runs. The UI is opt-in.
func (s *Spec) UIEnabled() bool {
	return s.Marathon != nil && s.UI != nil && s.UI.Enabled != nil && *s.UI.Enabled
}

// Report is true when the operator must detect drift but change nothing.
func (s *Spec) Report() bool { return s.Reconcile.Mode == ModeReport }

// SudoEnabled reports whether node commands go through sudo -n.
func (s *SSHSpec) SudoEnabled() bool { return s.Sudo != nil && *s.Sudo }

// EventStreamEnabled reports whether /v2/events is followed.
func (m *MarathonSpec) EventStreamEnabled() bool { return enabled(m.EventStream) }

// TCPBeLiberalValue is the sysctl value the spec wants: 1 or 0.
func (c *ConntrackSpec) TCPBeLiberalValue() int {
	if enabled(c.TCPBeLiberal) {
		return 1
	}
	return 0
}

// InstancesOr returns *p or def.
func InstancesOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// AuthSpec is the registry's access control.
type AuthSpec struct {
	Htpasswd *HtpasswdSpec `yaml:"htpasswd,omitempty" json:"htpasswd,omitempty"`
}

// HtpasswdSpec: the registry's htpasswd auth. Every user may push and pull;
// the pull user's password is generated and rotated by the operator.
type HtpasswdSpec struct {
	// Realm is the Basic auth realm the registry announces.
	Realm string         `yaml:"realm,omitempty" json:"realm,omitempty"`
	Users []HtpasswdUser `yaml:"users,omitempty" json:"users,omitempty"`
	// PullUser names the generated user agents pull with; a generation
	// suffix (<pullUser>-<n>) lets old and new passwords be valid at once.
	PullUser string `yaml:"pullUser,omitempty" json:"pullUser,omitempty"`
	// PullPasswordRotation is how often a new pull password is made.
	PullPasswordRotation Duration `yaml:"pullPasswordRotation,omitempty" json:"pullPasswordRotation,omitempty"`
}

// HtpasswdUser is a person or CI job; the password is read from a file
// (one line, the plain password) so it never sits in the spec.
type HtpasswdUser struct {
	Name         string `yaml:"name" json:"name"`
	PasswordFile string `yaml:"passwordFile" json:"passwordFile"`
}

// PullCredentialsSpec lists the forms of the pull credentials every agent
// gets. Each is a path; nil means its default, "" turns that form off.
type PullCredentialsSpec struct {
	// DockerTarGz holds .docker/config.json (0600) for the Docker
	// containerizer: apps fetch it with "fetch": [{"uri": "file://<path>"}].
	DockerTarGz *string `yaml:"dockerTarGz,omitempty" json:"dockerTarGz,omitempty"`
	// DockerConfig is merged: entries for other registries are kept.
	DockerConfig *string `yaml:"dockerConfig,omitempty" json:"dockerConfig,omitempty"`
	// MesosDockerConfig is a file for the Mesos agent's --docker_config (UCR).
	MesosDockerConfig *string `yaml:"mesosDockerConfig,omitempty" json:"mesosDockerConfig,omitempty"`
}
