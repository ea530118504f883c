package state

import (
	"slices"
	"time"
)

// TopicMaintenance: the registry's requested read-only mode changed.
const TopicMaintenance = "maintenance"

// RegistryMaintenance is whether the registry must run read-only, as the
// maintenance reconciler requests it for a garbage-collection window.
//
//	owner    maintenance (SetRegistryMaintenance)
//	readers  placement and app, through the rendered config.yml
//	         (storage.maintenance.readonly): placement places the read-only
//	         file and the app restarts the registry with it, the usual path
//	         of a config change
//
// It lives only in memory and starts writable: an operator that starts
// (after a crash, or as a new leader) renders a writable config until its
// maintenance reconciler, having closed any window it found recorded,
// asks for read-only again.
type RegistryMaintenance struct {
	ReadOnly bool      `json:"readOnly"`
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

// Maintenance is the maintenance reconciler's slice for the status page,
// `status`, `plan` and metrics.
type Maintenance struct {
	Schedule string    `json:"schedule,omitempty"`
	Next     time.Time `json:"next,omitzero"`
	// Status is the window's one-line state, or why a due run waits.
	Status string `json:"status,omitempty"`
	// WindowOpen: a read-only window is recorded (opening to closing).
	WindowOpen bool   `json:"windowOpen"`
	RunID      string `json:"runID,omitempty"`
	// DataAgent is the agent holding the registry's data.
	DataAgent string `json:"dataAgent,omitempty"`
	// The last run this operator finished.
	LastRun        time.Time `json:"lastRun,omitzero"`
	LastResult     string    `json:"lastResult,omitempty"`
	LastFreedBytes uint64    `json:"lastFreedBytes"`
	LastError      string    `json:"lastError,omitempty"`
	// Storage of the data filesystem, from the last pass (0 unknown).
	StorageUsed uint64    `json:"storageUsed"`
	StorageFree uint64    `json:"storageFree"`
	StorageSize uint64    `json:"storageSize"`
	StorageAt   time.Time `json:"storageAt,omitzero"`
	// Pending is what a run would do (report mode and plan).
	Pending []string `json:"pending,omitempty"`
}

// RegistryMaintenance returns the maintenance reconciler's view.
func (s *Store) RegistryMaintenance() RegistryMaintenance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.readOnly
}

// SetRegistryMaintenance records the requested mode and notifies
// TopicMaintenance listeners when it changed, so placement and the app
// move at once.
func (s *Store) SetRegistryMaintenance(m RegistryMaintenance) {
	s.mu.Lock()
	changed := s.readOnly.ReadOnly != m.ReadOnly
	s.readOnly = m
	s.mu.Unlock()
	if changed {
		s.notify(TopicMaintenance)
	}
}

// Maintenance returns the maintenance slice.
func (s *Store) Maintenance() Maintenance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.maintenance
	m.Pending = slices.Clone(m.Pending)
	return m
}

// SetMaintenance replaces the maintenance slice.
func (s *Store) SetMaintenance(m Maintenance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maintenance = m
}
