package marathonsim

import (
	"encoding/json"
	"time"
)

// Executor starts tasks on agents. The emulator decides what to run where
// (placement, ports, versions); the executor runs it and reports its state
// and health.
type Executor interface {
	Launch(spec LaunchSpec) (TaskHandle, error)
}

// Placer is implemented by executors that want to pin an app's tasks to a
// host themselves (MemExec.SetHost). ok=false leaves the choice to the
// emulator's constraint matching.
type Placer interface {
	Place(appID string, candidates []Agent) (agent Agent, ok bool)
}

// TaskHandle is one launched task.
type TaskHandle interface {
	// Status is polled once per emulator tick; it must not block.
	Status(now time.Time) TaskStatus
	// Kill stops the task; later Status calls report a terminal state.
	Kill()
}

// TaskStatus is what the executor knows about a task.
type TaskStatus struct {
	// State is a Mesos task state: TASK_STAGING, TASK_STARTING, TASK_RUNNING,
	// or a terminal one (TASK_FINISHED, TASK_FAILED, TASK_KILLED, TASK_LOST).
	State   string
	Message string
	// Health has one entry per app health check, nil until checks ran.
	Health []HealthResult
	// Ports overrides LaunchSpec.HostPorts when the task listens elsewhere.
	Ports []int
}

// HealthResult is the outcome of one health check of one task.
type HealthResult struct {
	Alive               bool
	ConsecutiveFailures int
	FirstSuccess        time.Time
	LastSuccess         time.Time
	LastFailure         time.Time
	LastFailureCause    string
}

// LaunchSpec describes one task to start.
type LaunchSpec struct {
	TaskID     string
	InstanceID string
	AppID      string
	Version    string
	App        AppSpec
	Agent      Agent
	// HostPorts has one port per port mapping / port definition.
	HostPorts []int
}

// AppSpec is the typed view of a normalised app that executors need.
type AppSpec struct {
	ID              string            `json:"id"`
	Cmd             string            `json:"cmd"`
	Args            []string          `json:"args"`
	Instances       int               `json:"instances"`
	Env             map[string]any    `json:"env"`
	Labels          map[string]string `json:"labels"`
	Constraints     [][]string        `json:"constraints"`
	Container       *ContainerSpec    `json:"container"`
	Networks        []NetworkSpec     `json:"networks"`
	PortDefinitions []PortDefinition  `json:"portDefinitions"`
	HealthChecks    []HealthCheckSpec `json:"healthChecks"`
	UpgradeStrategy struct {
		MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
		MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
	} `json:"upgradeStrategy"`
	KillSelection  string  `json:"killSelection"`
	BackoffSeconds float64 `json:"backoffSeconds"`
}

// ContainerSpec is the app's container.
type ContainerSpec struct {
	Type   string `json:"type"`
	Docker *struct {
		Image string `json:"image"`
	} `json:"docker"`
	PortMappings []PortMapping `json:"portMappings"`
	Volumes      []VolumeSpec  `json:"volumes"`
}

// NetworkSpec is one entry of the app's networks.
type NetworkSpec struct {
	Mode string `json:"mode"`
	Name string `json:"name"`
}

// PortMapping is one container port mapping.
type PortMapping struct {
	ContainerPort int               `json:"containerPort"`
	HostPort      *int              `json:"hostPort"`
	ServicePort   int               `json:"servicePort"`
	Protocol      string            `json:"protocol"`
	Name          string            `json:"name"`
	Labels        map[string]string `json:"labels"`
}

// PortDefinition is one host-network port.
type PortDefinition struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	Name     string `json:"name"`
}

// VolumeSpec is a container volume.
type VolumeSpec struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	Mode          string `json:"mode"`
}

// HealthCheckSpec is one app health check (defaults filled).
type HealthCheckSpec struct {
	Protocol               string `json:"protocol"`
	Path                   string `json:"path"`
	PortIndex              *int   `json:"portIndex"`
	Port                   *int   `json:"port"`
	GracePeriodSeconds     int    `json:"gracePeriodSeconds"`
	IntervalSeconds        int    `json:"intervalSeconds"`
	TimeoutSeconds         int    `json:"timeoutSeconds"`
	MaxConsecutiveFailures int    `json:"maxConsecutiveFailures"`
	IgnoreHTTP1xx          bool   `json:"ignoreHttp1xx"`
	Command                *struct {
		Value string `json:"value"`
	} `json:"command"`
}

// StringEnv returns the env entries that are plain strings (secret
// references have no value outside a secret store).
func (a AppSpec) StringEnv() map[string]string {
	out := map[string]string{}
	for k, v := range a.Env {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// NetworkMode is "host", "container/bridge" or "container".
func (a AppSpec) NetworkMode() string {
	if len(a.Networks) == 0 || a.Networks[0].Mode == "" {
		return "host"
	}
	return a.Networks[0].Mode
}

// Image is the docker image, or "".
func (a AppSpec) Image() string {
	if a.Container == nil || a.Container.Docker == nil {
		return ""
	}
	return a.Container.Docker.Image
}

func specOf(def map[string]any) AppSpec {
	var sp AppSpec
	b, _ := json.Marshal(def)
	_ = json.Unmarshal(b, &sp)
	return sp
}
