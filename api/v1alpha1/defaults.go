package v1alpha1

import "time"

// Default values, in one place so `plan` can show them and tests can name them.
const (
	DefaultMarathonTimeout   = 10 * time.Second
	DefaultSSHUser           = "root"
	DefaultSSHPort           = 22
	DefaultSSHConcurrency    = 32
	DefaultConnectTimeout    = 10 * time.Second
	DefaultCommandTimeout    = 30 * time.Second
	DefaultKeepAlive         = 30 * time.Second
	DefaultStateDir          = "/var/lib/registry-operator"
	DefaultKeyAlgorithm      = "ECDSA-P256"
	DefaultCACommonName      = "registry-operator CA"
	DefaultCADuration        = 87600 * time.Hour
	DefaultCARenewBefore     = 8760 * time.Hour
	DefaultServerDuration    = 2160 * time.Hour
	DefaultServerRenewBefore = 720 * time.Hour
	DefaultRotationOverlap   = 5 * time.Minute
	DefaultCertsDir          = "/etc/docker/certs.d"
	DefaultUCRCertsDir       = "/var/lib/dcos/pki/tls/certs"
	DefaultPersistFile       = "/etc/sysctl.d/90-registry-operator.conf"
	DefaultModulesLoadFile   = "/etc/modules-load.d/registry-operator.conf"
	DefaultAppID             = "/registry"
	DefaultAppImage          = "registry:2.8.3"
	DefaultCPUs              = 0.5
	DefaultMem               = 128
	DefaultContainerPort     = 5000
	DefaultCertsHostPath     = "/etc/privateregistry/certs"
	DefaultDataHostPath      = "/data/docker-registry"
	DefaultDeploymentTimeout = 10 * time.Minute
	DefaultUIID              = "/registry-ui"
	DefaultUIImage           = "hyper/docker-registry-web:latest"
	DefaultUIContainerPort   = 8080
	DefaultInterval          = 60 * time.Second
	DefaultReconcileTimeout  = 5 * time.Minute
	DefaultElectionPath      = "/registry-operator/leader"
	DefaultSessionTimeout    = 10 * time.Second
	DefaultAuthRealm         = "registry"
	DefaultPullUser          = "agents"
	DefaultPullRotation      = 720 * time.Hour
	DefaultDockerTarGz       = "/etc/docker.tar.gz"
	DefaultDockerConfig      = "/root/.docker/config.json"
	DefaultMaxReadOnly       = 30 * time.Minute
	DefaultGCTimeout         = 20 * time.Minute
	DefaultGCRunner          = RunnerDocker
	DefaultGCBinaryPath      = "/usr/bin/docker-registry"
	DefaultWarnUsedRatio     = 0.8
	DefaultMirrorID          = "/registry-mirror"
	DefaultMirrorRemoteURL   = "https://registry-1.docker.io"
	DefaultMirrorCertsHost   = "/etc/privateregistry/mirror-certs"
	DefaultMirrorDataHost    = "/data/docker-registry-mirror"
	// MinPullRotation bounds how often the pull password may change: every
	// change is distributed to every agent.
	MinPullRotation = time.Minute
)

// Default fills every optional field that is unset. It is idempotent and is
// the only place defaults are applied.
func Default(r *Registry) {
	s := &r.Spec
	if r.Metadata.Name == "" {
		r.Metadata.Name = "registry"
	}
	if m := s.Marathon; m != nil {
		setDur(&m.Timeout, DefaultMarathonTimeout)
	}
	if n := s.Nodes; n != nil {
		ssh := &n.SSH
		setStr(&ssh.User, DefaultSSHUser)
		setInt(&ssh.Port, DefaultSSHPort)
		setStr(&ssh.HostKeyPolicy, HostKeyStrict)
		setInt(&ssh.Concurrency, DefaultSSHConcurrency)
		setDur(&ssh.ConnectTimeout, DefaultConnectTimeout)
		setDur(&ssh.CommandTimeout, DefaultCommandTimeout)
		setDur(&ssh.KeepAlive, DefaultKeepAlive)
		if ssh.Sudo == nil {
			ssh.Sudo = ptr(ssh.User != "root")
		}
	}
	if t := s.TLS; t != nil {
		setStr(&t.Mode, TLSSelfSigned)
		setStr(&t.StateDir, DefaultStateDir)
		setStr(&t.KeyAlgorithm, DefaultKeyAlgorithm)
		setStr(&t.CA.CommonName, DefaultCACommonName)
		setDur(&t.CA.Duration, DefaultCADuration)
		setDur(&t.CA.RenewBefore, DefaultCARenewBefore)
		setDur(&t.CA.RotationOverlap, DefaultRotationOverlap)
		setDur(&t.Server.Duration, DefaultServerDuration)
		setDur(&t.Server.RenewBefore, DefaultServerRenewBefore)
		if t.Server.CommonName == "" && s.Registry != nil {
			t.Server.CommonName = hostOf(s.Registry.Address)
		}
	}
	if t := s.Trust; t != nil {
		setBool(&t.Enabled, true)
		if len(t.CertsDirs) == 0 {
			t.CertsDirs = []string{DefaultCertsDir}
		}
		if len(t.Runtimes) == 0 {
			t.Runtimes = []string{RuntimeDocker, RuntimeUCR}
		}
		setStr(&t.UCRCertsDir, DefaultUCRCertsDir)
	}
	if c := s.Conntrack; c != nil {
		setBool(&c.Enabled, true)
		setBool(&c.TCPBeLiberal, true)
		setStr(&c.PersistFile, DefaultPersistFile)
		setStr(&c.ModulesLoadFile, DefaultModulesLoadFile)
	}
	if a := s.App; a != nil {
		setBool(&a.Enabled, true)
		setStr(&a.ID, DefaultAppID)
		setStr(&a.Image, DefaultAppImage)
		if a.Instances == nil {
			a.Instances = ptr(1)
		}
		setFloat(&a.CPUs, DefaultCPUs)
		setFloat(&a.Mem, DefaultMem)
		setInt(&a.ContainerPort, DefaultContainerPort)
		if a.VIP == "" && s.Registry != nil {
			a.VIP = s.Registry.Address
		}
		setStr(&a.CertsHostPath, DefaultCertsHostPath)
		setStr(&a.DataHostPath, DefaultDataHostPath)
		setDur(&a.DeploymentTimeout, DefaultDeploymentTimeout)
		if a.HealthCheck == nil {
			a.HealthCheck = &HealthCheckSpec{}
		}
		h := a.HealthCheck
		setStr(&h.Protocol, "TCP")
		setDur(&h.GracePeriod, 300*time.Second)
		setDur(&h.Interval, 60*time.Second)
		setDur(&h.Timeout, 20*time.Second)
		setInt(&h.MaxConsecutiveFailures, 3)
	}
	if u := s.UI; u != nil {
		setBool(&u.Enabled, false)
		setStr(&u.ID, DefaultUIID)
		setStr(&u.Image, DefaultUIImage)
		if u.Instances == nil {
			u.Instances = ptr(1)
		}
		setFloat(&u.CPUs, 0.1)
		setFloat(&u.Mem, 64)
		setInt(&u.ContainerPort, DefaultUIContainerPort)
	}
	setDur(&s.Reconcile.Interval, DefaultInterval)
	setStr(&s.Reconcile.Mode, ModeEnforce)
	setDur(&s.Reconcile.Timeout, DefaultReconcileTimeout)
	if s.AuthEnabled() {
		h := s.Auth.Htpasswd
		setStr(&h.Realm, DefaultAuthRealm)
		setStr(&h.PullUser, DefaultPullUser)
		setDur(&h.PullPasswordRotation, DefaultPullRotation)
		if s.PullCredentials == nil && s.Nodes != nil {
			s.PullCredentials = &PullCredentialsSpec{}
		}
	}
	if p := s.PullCredentials; p != nil {
		if p.DockerTarGz == nil {
			p.DockerTarGz = ptr(DefaultDockerTarGz)
		}
		if p.DockerConfig == nil {
			p.DockerConfig = ptr(DefaultDockerConfig)
		}
		if p.MesosDockerConfig == nil {
			p.MesosDockerConfig = ptr("")
		}
	}
	if m := s.Maintenance; m != nil {
		if m.GarbageCollection == nil {
			m.GarbageCollection = &GarbageCollectionSpec{}
		}
		g := m.GarbageCollection
		setDur(&g.MaxReadOnly, DefaultMaxReadOnly)
		setDur(&g.Timeout, DefaultGCTimeout)
		setStr(&g.Runner, DefaultGCRunner)
		if g.Runner == RunnerBinary {
			setStr(&g.BinaryPath, DefaultGCBinaryPath)
		}
		if m.Storage == nil {
			m.Storage = &StorageSpec{}
		}
		if m.Storage.WarnUsedRatio == nil {
			m.Storage.WarnUsedRatio = ptr(DefaultWarnUsedRatio)
		}
	}
	if m := s.Mirror; m != nil {
		defaultMirror(m)
	}
	if l := s.LeaderElection; l != nil {
		setStr(&l.Path, DefaultElectionPath)
		setDur(&l.SessionTimeout, DefaultSessionTimeout)
		setStr(&l.StateStore, StateStoreZooKeeper)
	}
}

// defaultMirror fills the mirror's unset fields.
func defaultMirror(m *MirrorSpec) {
	setBool(&m.Enabled, true)
	setStr(&m.ID, DefaultMirrorID)
	setStr(&m.Image, DefaultAppImage)
	setStr(&m.RemoteURL, DefaultMirrorRemoteURL)
	if m.Instances == nil {
		m.Instances = ptr(1)
	}
	setFloat(&m.CPUs, DefaultCPUs)
	setFloat(&m.Mem, DefaultMem)
	setInt(&m.ContainerPort, DefaultContainerPort)
	setStr(&m.VIP, m.Address)
	setStr(&m.CertsHostPath, DefaultMirrorCertsHost)
	setStr(&m.DataHostPath, DefaultMirrorDataHost)
	setBool(&m.DockerRegistryMirrors, true)
}

func ptr[T any](v T) *T { return &v }

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setFloat(p *float64, v float64) {
	if *p == 0 {
		*p = v
	}
}

func setBool(p **bool, v bool) {
	if *p == nil {
		*p = ptr(v)
	}
}

// setDur leaves text that failed to parse alone, so validation reports it.
func setDur(p *Duration, v time.Duration) {
	if p.IsZero() {
		*p = D(v)
	}
}

// DeploymentTimeout is how long a deployment of any app the spec names may
// run: app.deploymentTimeout, which the UI app shares; without an app
// section (a UI alone), the default.
func (s *Spec) DeploymentTimeout() time.Duration {
	if s.App != nil {
		return s.App.DeploymentTimeout.Duration
	}
	return DefaultDeploymentTimeout
}

// SSHConcurrency is nodes.ssh.concurrency; without a nodes section, the
// concurrency one would get by default (what a reload adding it starts with).
func (s *Spec) SSHConcurrency() int {
	if s.Nodes != nil {
		return s.Nodes.SSH.Concurrency
	}
	return DefaultSSHConcurrency
}
