package marathon

// App is an app definition in Marathon's 1.5+ format, limited to the fields
// the operator sets. go-marathon v0.7.1's Application struct cannot be used
// for this: it has no `networks` nor `container.portMappings` (they are lost
// on decode and cannot be sent), and its `omitempty` ints cannot carry a zero
// (instances 0, hostPort 0, minimumHealthCapacity 0). Zero-valued fields that
// matter are therefore pointers or always emitted here.
type App struct {
	ID              string            `json:"id"`
	Instances       int               `json:"instances"`
	CPUs            float64           `json:"cpus"`
	Mem             float64           `json:"mem"`
	Args            []string          `json:"args,omitempty"`
	Container       *Container        `json:"container,omitempty"`
	Networks        []Network         `json:"networks,omitempty"`
	Env             map[string]string `json:"env"`
	Labels          map[string]string `json:"labels"`
	HealthChecks    []HealthCheck     `json:"healthChecks"`
	Constraints     [][]string        `json:"constraints"`
	UpgradeStrategy *UpgradeStrategy  `json:"upgradeStrategy,omitempty"`
	// SecretEnv names env keys whose values must never be logged or shown
	// in a diff. It is not part of the definition.
	SecretEnv []string `json:"-"`
}

// Container is the Docker container of an app.
type Container struct {
	Type         string        `json:"type"`
	Docker       Docker        `json:"docker"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	Volumes      []Volume      `json:"volumes"`
}

// Docker names the image.
type Docker struct {
	Image string `json:"image"`
}

// Network is one entry of the 1.5 `networks` list.
type Network struct {
	Mode string `json:"mode"`
	Name string `json:"name,omitempty"`
}

// PortMapping is a container/bridge port. hostPort and servicePort are
// always sent: 0 asks Marathon to assign one.
type PortMapping struct {
	ContainerPort int               `json:"containerPort"`
	HostPort      int               `json:"hostPort"`
	ServicePort   int               `json:"servicePort"`
	Protocol      string            `json:"protocol"`
	Name          string            `json:"name,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// Volume is a host path mounted into the container.
type Volume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	Mode          string `json:"mode"`
}

// HealthCheck is a Marathon health check. Every number is sent, so a zero
// (e.g. maxConsecutiveFailures 0 = never kill) survives.
type HealthCheck struct {
	Protocol               string `json:"protocol"`
	Path                   string `json:"path,omitempty"`
	PortIndex              int    `json:"portIndex"`
	GracePeriodSeconds     int    `json:"gracePeriodSeconds"`
	IntervalSeconds        int    `json:"intervalSeconds"`
	TimeoutSeconds         int    `json:"timeoutSeconds"`
	MaxConsecutiveFailures int    `json:"maxConsecutiveFailures"`
}

// UpgradeStrategy is sent with both values, so 0/0 reaches Marathon.
type UpgradeStrategy struct {
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
}

// Labels and values the operator owns on every app it manages.
const (
	// OwnerLabel marks an app as managed by the registry named in its value.
	OwnerLabel = "registry-operator/owner"
	// OwnedLabelsLabel and OwnedEnvLabel record which label and env keys the
	// operator set, so a key dropped from the spec is removed from the app
	// while keys a human added are left alone.
	OwnedLabelsLabel = "registry-operator/owned-labels"
	OwnedEnvLabel    = "registry-operator/owned-env"
	// VIPLabel is the DC/OS layer-4 VIP label on the registry's port.
	VIPLabel = "VIP_0"
)
