package marathonsim

import (
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"time"
)

const (
	agentPortMin = 31000
	agentPortMax = 32000
	clusterID    = "5b8e3c2a-3f1d-4c7e-9a0b-7d2f1e6c4a90"
)

type agentState struct {
	Agent
	registered time.Time
}

type task struct {
	id         string
	instanceID string
	appID      string
	agent      Agent
	version    time.Time
	stagedAt   time.Time
	startedAt  time.Time
	state      string
	ports      []int
	health     []HealthResult
	healthy    *bool // last published instance health
	killing    bool
	handle     TaskHandle
	spec       AppSpec
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) setAgentsLocked(agents []Agent) {
	old := map[string]agentState{}
	for _, a := range s.agents {
		old[a.Hostname] = a
	}
	s.agents = nil
	for _, a := range agents {
		if prev, ok := old[a.Hostname]; ok && a.ID == "" {
			a.ID = prev.ID
			s.agents = append(s.agents, agentState{Agent: a, registered: prev.registered})
			continue
		}
		if a.ID == "" {
			a.ID = fmt.Sprintf("%s-S%d", clusterID, s.agentSeq)
			s.agentSeq++
		}
		if a.IP == "" {
			a.IP = a.Hostname
		}
		s.agents = append(s.agents, agentState{Agent: a, registered: s.clock.Now()})
	}
}

func (s *Server) loseTasksOnMissingAgentsLocked() {
	known := map[string]bool{}
	for _, a := range s.agents {
		known[a.ID] = true
	}
	for _, t := range s.sortedTasksLocked() {
		if !known[t.agent.ID] {
			t.handle.Kill()
			s.terminateLocked(t, "TASK_LOST", "Agent removed")
		}
	}
}

func (s *Server) sortedTasksLocked() []*task {
	ts := make([]*task, 0, len(s.tasks))
	for _, t := range s.tasks {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool {
		if !ts[i].stagedAt.Equal(ts[j].stagedAt) {
			return ts[i].stagedAt.Before(ts[j].stagedAt)
		}
		return ts[i].id < ts[j].id
	})
	return ts
}

// appTasksLocked returns the app's tasks, oldest first, without those being killed.
func (s *Server) appTasksLocked(appID string) []*task {
	var out []*task
	for _, t := range s.sortedTasksLocked() {
		if t.appID == appID && !t.killing {
			out = append(out, t)
		}
	}
	return out
}

// ready: running and, with health checks, every check passing.
func (t *task) ready() bool {
	if t.state != "TASK_RUNNING" {
		return false
	}
	if len(t.spec.HealthChecks) == 0 {
		return true
	}
	return healthyResults(t.health)
}

func healthyResults(h []HealthResult) bool {
	if len(h) == 0 {
		return false
	}
	for _, r := range h {
		if !r.Alive {
			return false
		}
	}
	return true
}

func (s *Server) hostPortsLocked(agentID string, spec AppSpec) []int {
	used := map[int]bool{}
	for _, t := range s.tasks {
		if t.agent.ID == agentID {
			for _, p := range t.ports {
				used[p] = true
			}
		}
	}
	next := agentPortMin
	dyn := func() int {
		for ; next <= agentPortMax; next++ {
			if !used[next] {
				used[next] = true
				return next
			}
		}
		return 0
	}
	var out []int
	if spec.NetworkMode() == "host" {
		for _, pd := range spec.PortDefinitions {
			out = append(out, dyn())
			_ = pd
		}
		return out
	}
	if spec.Container == nil {
		return nil
	}
	for _, pm := range spec.Container.PortMappings {
		switch {
		case pm.HostPort == nil:
			// container networking without a host port: nothing on the agent.
		case *pm.HostPort != 0:
			out = append(out, *pm.HostPort)
		default:
			out = append(out, dyn())
		}
	}
	return out
}

// launchLocked starts one task of the app; false when no agent fits or the
// executor refused.
func (s *Server) launchLocked(a *app) bool {
	spec := specOf(a.def)
	agent, ok := s.placeLocked(a.id, spec)
	if !ok {
		return false
	}
	now := s.clock.Now()
	instanceID := strings.ReplaceAll(strings.TrimPrefix(a.id, "/"), "/", "_") + ".instance-" + newUUID()
	t := &task{
		id:         instanceID + "._app.1",
		instanceID: instanceID,
		appID:      a.id,
		agent:      agent,
		version:    a.version,
		stagedAt:   now,
		state:      "TASK_STAGING",
		spec:       spec,
	}
	t.ports = s.hostPortsLocked(agent.ID, spec)
	h, err := s.exec.Launch(LaunchSpec{
		TaskID: t.id, InstanceID: instanceID, AppID: a.id, Version: fmtTime(a.version),
		App: spec, Agent: agent, HostPorts: t.ports,
	})
	if err != nil {
		a.lastFailure = map[string]any{
			"appId": a.id, "host": agent.Hostname, "message": err.Error(), "state": "TASK_FAILED",
			"taskId": t.id, "timestamp": fmtTime(now), "version": fmtTime(a.version), "slaveId": agent.ID,
		}
		s.emitStatusLocked(t, "TASK_FAILED", err.Error())
		a.backoffUntil = now.Add(s.backoff(a))
		return false
	}
	t.handle = h
	s.tasks[t.id] = t
	s.emitStatusLocked(t, "TASK_STAGING", "")
	return true
}

func (s *Server) backoff(a *app) time.Duration {
	sec := specOf(a.def).BackoffSeconds
	return time.Duration(sec * float64(time.Second))
}

// killLocked asks the executor to stop a task; it goes once it reports a
// terminal state.
func (s *Server) killLocked(t *task) {
	if t.killing {
		return
	}
	t.killing = true
	t.handle.Kill()
}

// terminateLocked removes a task that reached a terminal state.
func (s *Server) terminateLocked(t *task, state, msg string) {
	if _, ok := s.tasks[t.id]; !ok {
		return
	}
	delete(s.tasks, t.id)
	t.state = state
	now := s.clock.Now()
	if a, ok := s.apps[t.appID]; ok && !t.killing && state != "TASK_KILLED" {
		a.lastFailure = map[string]any{
			"appId": t.appID, "host": t.agent.Hostname, "message": msg, "state": state,
			"taskId": t.id, "timestamp": fmtTime(now), "version": fmtTime(t.version), "slaveId": t.agent.ID,
		}
		a.backoffUntil = now.Add(s.backoff(a))
	}
	s.emitStatusLocked(t, state, msg)
}

// pollTasksLocked folds every executor's report into the task table.
func (s *Server) pollTasksLocked() {
	now := s.clock.Now()
	for _, t := range s.sortedTasksLocked() {
		st := t.handle.Status(now)
		if st.Ports != nil {
			t.ports = st.Ports
		}
		switch st.State {
		case "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE":
			s.terminateLocked(t, st.State, st.Message)
			continue
		}
		if st.State != t.state {
			t.state = st.State
			if st.State == "TASK_RUNNING" && t.startedAt.IsZero() {
				t.startedAt = now
			}
			s.emitStatusLocked(t, st.State, st.Message)
		}
		t.health = st.Health
		s.healthEventsLocked(t, now)
	}
}

func (s *Server) healthEventsLocked(t *task, now time.Time) {
	if len(t.spec.HealthChecks) == 0 || t.state != "TASK_RUNNING" || len(t.health) == 0 {
		return
	}
	h := healthyResults(t.health)
	if t.healthy == nil || *t.healthy != h {
		t.healthy = &h
		s.emitLocked("health_status_changed_event", map[string]any{
			"appId": t.appID, "instanceId": t.instanceID, "version": fmtTime(t.version), "alive": h,
		})
		s.emitLocked("instance_health_changed_event", map[string]any{
			"instanceId": t.instanceID, "runSpecId": t.appID, "runSpecVersion": fmtTime(t.version), "healthy": h,
		})
	}
	if t.killing {
		return
	}
	for i, r := range t.health {
		if r.Alive || i >= len(t.spec.HealthChecks) {
			continue
		}
		hc := t.spec.HealthChecks[i]
		s.emitLocked("failed_health_check_event", map[string]any{
			"appId": t.appID, "instanceId": t.instanceID, "taskId": t.id, "healthCheck": hc,
		})
		inGrace := now.Sub(t.startedAt) < time.Duration(hc.GracePeriodSeconds)*time.Second && r.FirstSuccess.IsZero()
		if hc.MaxConsecutiveFailures > 0 && r.ConsecutiveFailures >= hc.MaxConsecutiveFailures && !inGrace {
			s.emitLocked("unhealthy_instance_kill_event", map[string]any{
				"appId": t.appID, "taskId": t.id, "instanceId": t.instanceID, "version": fmtTime(t.version),
				"reason": r.LastFailureCause, "host": t.agent.Hostname, "slaveId": t.agent.ID,
			})
			s.killLocked(t)
			return
		}
	}
}

func (t *task) json(servicePorts []int) map[string]any {
	m := map[string]any{
		"id": t.id, "appId": t.appID, "host": t.agent.Hostname, "slaveId": t.agent.ID,
		"state": t.state, "stagedAt": fmtTime(t.stagedAt), "version": fmtTime(t.version),
		"ports": nonNilInts(t.ports), "servicePorts": nonNilInts(servicePorts),
		"ipAddresses":  []any{map[string]any{"ipAddress": t.agent.IP, "protocol": "IPv4"}},
		"localVolumes": []any{}, "role": "*",
	}
	if !t.startedAt.IsZero() {
		m["startedAt"] = fmtTime(t.startedAt)
	}
	hrs := []any{}
	for _, h := range t.health {
		r := map[string]any{
			"alive": h.Alive, "consecutiveFailures": h.ConsecutiveFailures, "instanceId": t.instanceID,
		}
		for k, v := range map[string]time.Time{"firstSuccess": h.FirstSuccess, "lastSuccess": h.LastSuccess, "lastFailure": h.LastFailure} {
			if !v.IsZero() {
				r[k] = fmtTime(v)
			}
		}
		if h.LastFailureCause != "" {
			r["lastFailureCause"] = h.LastFailureCause
		}
		hrs = append(hrs, r)
	}
	m["healthCheckResults"] = hrs
	return m
}

func nonNilInts(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

func servicePortsOf(def map[string]any) []int {
	return prevServicePorts(def)
}

// counts computes tasksStaged/Running/Healthy/Unhealthy (TaskCounts.scala).
func (s *Server) countsLocked(appID string) (staged, running, healthy, unhealthy int) {
	for _, t := range s.tasks {
		if t.appID != appID {
			continue
		}
		switch t.state {
		case "TASK_RUNNING":
			running++
		case "TASK_STAGING", "TASK_STARTING", "":
			staged++
		}
		if len(t.health) > 0 {
			if healthyResults(t.health) {
				healthy++
			} else {
				unhealthy++
			}
		}
	}
	return
}
