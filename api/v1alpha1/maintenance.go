package v1alpha1

// Garbage-collection runners.
const (
	// RunnerDocker runs `docker run --rm` of the app's image with its data
	// directory mounted, on the registry's agent.
	RunnerDocker = "docker"
	// RunnerBinary runs a registry binary installed on the agent, such as
	// Debian's /usr/bin/docker-registry.
	RunnerBinary = "binary"
)

var gcRunners = []string{RunnerDocker, RunnerBinary}

// MaintenanceSpec is the registry's upkeep: scheduled garbage collection
// inside a read-only window, and the storage alert threshold.
type MaintenanceSpec struct {
	GarbageCollection *GarbageCollectionSpec `yaml:"garbageCollection,omitempty" json:"garbageCollection,omitempty"`
	Storage           *StorageSpec           `yaml:"storage,omitempty" json:"storage,omitempty"`
}

// GarbageCollectionSpec schedules `registry garbage-collect`. It runs only
// while the registry refuses uploads, which a read-only window bounded by
// MaxReadOnly guarantees.
type GarbageCollectionSpec struct {
	// Schedule is a five-field cron schedule in UTC; "" schedules nothing.
	Schedule string `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	// DeleteUntagged passes --delete-untagged.
	DeleteUntagged bool `yaml:"deleteUntagged,omitempty" json:"deleteUntagged,omitempty"`
	// MaxReadOnly: writes come back after this, whatever GC is doing.
	MaxReadOnly Duration `yaml:"maxReadOnly,omitempty" json:"maxReadOnly,omitempty"`
	// Timeout bounds the garbage-collect command itself; it must leave
	// room inside MaxReadOnly for the switch to read-only and back.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Runner is docker or binary.
	Runner string `yaml:"runner,omitempty" json:"runner,omitempty"`
	// BinaryPath is the registry binary on the agent (runner binary).
	BinaryPath string `yaml:"binaryPath,omitempty" json:"binaryPath,omitempty"`
}

// StorageSpec holds the thresholds for the registry's data filesystem.
type StorageSpec struct {
	// WarnUsedRatio is the used fraction above which the storage alert fires.
	WarnUsedRatio *float64 `yaml:"warnUsedRatio,omitempty" json:"warnUsedRatio,omitempty"`
}

// MaintenanceEnabled: the maintenance reconciler runs (it needs the app it
// switches to read-only and the nodes it runs garbage-collect on).
func (s *Spec) MaintenanceEnabled() bool {
	return s.Maintenance != nil && s.PlacementEnabled()
}

// GCScheduled: a garbage collection schedule is set.
func (s *Spec) GCScheduled() bool {
	return s.MaintenanceEnabled() && s.Maintenance.GarbageCollection != nil && s.Maintenance.GarbageCollection.Schedule != ""
}
