package v1alpha1

// MirrorSpec is a pull-through cache of one upstream registry (Docker Hub by
// default), run as a second Marathon app with the registry's CA, trust and
// health care. The registry image does the caching itself (proxy.remoteurl).
type MirrorSpec struct {
	Enabled *bool  `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	ID      string `yaml:"id,omitempty" json:"id,omitempty"`
	Image   string `yaml:"image,omitempty" json:"image,omitempty"`
	// Address is where clients reach the mirror: it joins the server
	// certificate's SANs and names a certs.d directory on every agent.
	Address string `yaml:"address" json:"address"`
	// RemoteURL is the upstream; http:// only for one on a private network.
	RemoteURL string `yaml:"remoteURL,omitempty" json:"remoteURL,omitempty"`
	// RemoteUsernameFile and RemotePasswordFile hold upstream credentials
	// (one line each). They reach only the mirror's config file on its
	// agents, never the Marathon app.
	RemoteUsernameFile string     `yaml:"remoteUsernameFile,omitempty" json:"remoteUsernameFile,omitempty"`
	RemotePasswordFile string     `yaml:"remotePasswordFile,omitempty" json:"remotePasswordFile,omitempty"`
	Instances          *int       `yaml:"instances,omitempty" json:"instances,omitempty"`
	CPUs               float64    `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	Mem                float64    `yaml:"mem,omitempty" json:"mem,omitempty"`
	Constraints        [][]string `yaml:"constraints,omitempty" json:"constraints,omitempty"`
	ContainerPort      int        `yaml:"containerPort,omitempty" json:"containerPort,omitempty"`
	VIP                string     `yaml:"vip,omitempty" json:"vip,omitempty"`
	CertsHostPath      string     `yaml:"certsHostPath,omitempty" json:"certsHostPath,omitempty"`
	DataHostPath       string     `yaml:"dataHostPath,omitempty" json:"dataHostPath,omitempty"`
	// DockerRegistryMirrors adds https://<address> to "registry-mirrors" in
	// every agent's daemon.json. Docker consults it for Docker Hub images only.
	DockerRegistryMirrors *bool `yaml:"dockerRegistryMirrors,omitempty" json:"dockerRegistryMirrors,omitempty"`
}

// MirrorEnabled: the mirror app is reconciled.
func (s *Spec) MirrorEnabled() bool {
	return s.Marathon != nil && s.Mirror != nil && enabled(s.Mirror.Enabled)
}

// MirrorAddress is the enabled mirror's address, or "".
func (s *Spec) MirrorAddress() string {
	if s.Mirror == nil || !enabled(s.Mirror.Enabled) {
		return ""
	}
	return s.Mirror.Address
}

// MirrorHost is the host part of the enabled mirror's address, or "".
func (s *Spec) MirrorHost() string { return hostOf(s.MirrorAddress()) }

// DockerMirrorURL is the "registry-mirrors" entry the operator owns in
// daemon.json, or "" when it keeps none.
func (s *Spec) DockerMirrorURL() string {
	if a := s.MirrorAddress(); a != "" && enabled(s.Mirror.DockerRegistryMirrors) {
		return "https://" + a
	}
	return ""
}

// AppSpec is the mirror's Marathon app in the registry app's terms, so one
// builder and one reconciler serve both. It has no HTTP secret file, env
// or labels of its own: everything it runs with is in its config file.
func (m *MirrorSpec) AppSpec() *AppSpec {
	return &AppSpec{Enabled: m.Enabled, ID: m.ID, Image: m.Image, Instances: m.Instances, CPUs: m.CPUs, Mem: m.Mem,
		Constraints: m.Constraints, ContainerPort: m.ContainerPort, VIP: m.VIP, CertsHostPath: m.CertsHostPath,
		DataHostPath: m.DataHostPath}
}
