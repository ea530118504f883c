package marathonsim

import (
	"sync"
	"time"
)

// HealthMode is how MemExec's tasks of one app behave.
type HealthMode int

const (
	// Healthy tasks start at the next tick and pass every health check.
	Healthy HealthMode = iota
	// NeverHealthy tasks run but fail every health check (Marathon kills
	// them after maxConsecutiveFailures and relaunches).
	NeverHealthy
	// Flapping tasks alternate between passing and failing checks.
	Flapping
	// Stuck tasks never leave TASK_STAGING, so deployments never finish.
	Stuck
	// Crashing tasks fail right after they start.
	Crashing
)

// MemExec runs tasks in memory. Each emulator tick is one health-check
// round; tests choose per app how tasks behave and where they land.
type MemExec struct {
	mu       sync.Mutex
	modes    map[string]HealthMode
	hosts    map[string]string
	launched map[string]int
}

// NewMemExec returns an executor whose tasks are all Healthy.
func NewMemExec() *MemExec {
	return &MemExec{modes: map[string]HealthMode{}, hosts: map[string]string{}, launched: map[string]int{}}
}

// SetMode sets the behaviour of the app's tasks, running ones included.
func (m *MemExec) SetMode(appID string, mode HealthMode) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.modes[canonicalID(appID)] = mode
}

// SetHost pins the app's new tasks to the agent with this hostname or IP
// ("" lets the constraints decide).
func (m *MemExec) SetHost(appID, host string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hosts[canonicalID(appID)] = host
}

// Launched returns how many tasks of the app were launched so far.
func (m *MemExec) Launched(appID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.launched[canonicalID(appID)]
}

// Place implements Placer.
func (m *MemExec) Place(appID string, candidates []Agent) (Agent, bool) {
	m.mu.Lock()
	host := m.hosts[appID]
	m.mu.Unlock()
	if host == "" {
		return Agent{}, false
	}
	for _, a := range candidates {
		if a.Hostname == host || a.IP == host {
			return a, true
		}
	}
	// The pinned host is not eligible: the task cannot be placed now.
	return Agent{}, true
}

func (m *MemExec) mode(appID string) HealthMode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.modes[appID]
}

// Launch implements Executor.
func (m *MemExec) Launch(spec LaunchSpec) (TaskHandle, error) {
	m.mu.Lock()
	m.launched[spec.AppID]++
	m.mu.Unlock()
	return &memTask{exec: m, appID: spec.AppID, checks: len(spec.App.HealthChecks)}, nil
}

type memTask struct {
	exec    *MemExec
	appID   string
	checks  int
	mu      sync.Mutex
	killed  bool
	started bool
	rounds  int
	health  []HealthResult
}

func (t *memTask) Kill() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.killed = true
}

func (t *memTask) Status(now time.Time) TaskStatus {
	mode := t.exec.mode(t.appID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.killed {
		return TaskStatus{State: "TASK_KILLED"}
	}
	if mode == Stuck && !t.started {
		return TaskStatus{State: "TASK_STAGING"}
	}
	if !t.started {
		// The first tick stages the task, the next one runs it.
		t.started = true
		return TaskStatus{State: "TASK_STAGING"}
	}
	if mode == Crashing {
		return TaskStatus{State: "TASK_FAILED", Message: "Command exited with status 1"}
	}
	if t.checks == 0 {
		return TaskStatus{State: "TASK_RUNNING"}
	}
	t.rounds++
	alive := true
	switch mode {
	case NeverHealthy:
		alive = false
	case Flapping:
		alive = t.rounds%2 == 1
	}
	if t.health == nil {
		t.health = make([]HealthResult, t.checks)
	}
	for i := range t.health {
		recordCheck(&t.health[i], alive, now, "health check failed")
	}
	return TaskStatus{State: "TASK_RUNNING", Health: append([]HealthResult(nil), t.health...)}
}

// recordCheck folds one check outcome into a result the way Marathon's
// health-check actor does.
func recordCheck(h *HealthResult, alive bool, now time.Time, cause string) {
	h.Alive = alive
	if alive {
		if h.FirstSuccess.IsZero() {
			h.FirstSuccess = now
		}
		h.LastSuccess = now
		h.ConsecutiveFailures = 0
		return
	}
	h.LastFailure = now
	h.LastFailureCause = cause
	h.ConsecutiveFailures++
}
