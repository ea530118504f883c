package marathonsim

import (
	"math"
	"net/http"
	"sort"
	"time"
)

const (
	actStart   = "StartApplication"
	actScale   = "ScaleApplication"
	actRestart = "RestartApplication"
	actStop    = "StopApplication"
)

type action struct {
	kind string
	app  string
}

type deployment struct {
	id       string
	version  time.Time
	affected []string
	steps    [][]action
	cur      int
	// original and target hold app definitions (nil: absent) for the plan.
	original map[string]map[string]any
	target   map[string]map[string]any
}

func (d *deployment) planJSON() map[string]any {
	steps := []any{}
	for _, st := range d.steps {
		acts := []any{}
		for _, a := range st {
			acts = append(acts, map[string]any{"action": a.kind, "app": a.app})
		}
		steps = append(steps, map[string]any{"actions": acts})
	}
	group := func(apps map[string]map[string]any) map[string]any {
		list := []any{}
		for _, id := range sortedKeys(apps) {
			if apps[id] != nil {
				list = append(list, apps[id])
			}
		}
		return map[string]any{"id": "/", "apps": list, "groups": []any{}, "pods": []any{}, "dependencies": []any{}, "version": fmtTime(d.version)}
	}
	return map[string]any{
		"id": d.id, "version": fmtTime(d.version), "steps": steps,
		"original": group(d.original), "target": group(d.target),
	}
}

func sortedKeys(m map[string]map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (d *deployment) currentActions() []action {
	if d.cur < len(d.steps) {
		return d.steps[d.cur]
	}
	return nil
}

func (d *deployment) json() map[string]any {
	steps := d.planJSON()["steps"]
	cur := []any{}
	for _, a := range d.currentActions() {
		cur = append(cur, map[string]any{"action": a.kind, "app": a.app, "readinessCheckResults": []any{}})
	}
	affected := append([]string{}, d.affected...)
	return map[string]any{
		"id": d.id, "version": fmtTime(d.version), "affectedApps": affected, "affectedPods": []string{},
		"steps": steps, "currentActions": cur, "currentStep": min(d.cur+1, len(d.steps)), "totalSteps": len(d.steps),
	}
}

// lockersLocked returns the deployments that touch any of the apps.
func (s *Server) lockersLocked(appIDs ...string) []*deployment {
	var out []*deployment
	for _, d := range s.deployments {
		for _, a := range d.affected {
			if contains(appIDs, a) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

func lockedBody(ds []*deployment) map[string]any {
	ids := []any{}
	for _, d := range ds {
		ids = append(ids, map[string]any{"id": d.id})
	}
	return map[string]any{
		"message":     "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/" + ds[0].id + "'.",
		"deployments": ids,
	}
}

// cancelLocked drops a deployment; its tasks stay as they are.
func (s *Server) cancelLocked(d *deployment, reason string) {
	for i, e := range s.deployments {
		if e == d {
			s.deployments = append(s.deployments[:i], s.deployments[i+1:]...)
			break
		}
	}
	s.emitLocked("deployment_failed", map[string]any{"id": d.id, "plan": d.planJSON(), "reason": reason})
}

func (s *Server) startDeploymentLocked(version time.Time, steps [][]action, original, target map[string]map[string]any) *deployment {
	var affected []string
	for _, st := range steps {
		for _, a := range st {
			if !contains(affected, a.app) {
				affected = append(affected, a.app)
			}
		}
	}
	for id := range target {
		if !contains(affected, id) {
			affected = append(affected, id)
		}
	}
	sort.Strings(affected)
	d := &deployment{id: newUUID(), version: version, affected: affected, steps: steps, original: original, target: target}
	s.deployments = append(s.deployments, d)
	s.emitLocked("group_change_success", map[string]any{"groupId": "/", "version": fmtTime(version)})
	if len(steps) > 0 {
		s.emitLocked("deployment_info", map[string]any{"plan": d.planJSON(), "currentStep": stepJSON(steps[0])})
	}
	return d
}

func stepJSON(st []action) map[string]any {
	acts := []any{}
	for _, a := range st {
		acts = append(acts, map[string]any{"action": a.kind, "app": a.app})
	}
	return map[string]any{"actions": acts}
}

// stepLocked polls tasks, advances deployments and keeps instance counts.
func (s *Server) stepLocked() {
	s.pollTasksLocked()
	for _, d := range append([]*deployment(nil), s.deployments...) {
		for d.cur < len(d.steps) {
			done := true
			for _, a := range d.steps[d.cur] {
				if !s.actLocked(a) {
					done = false
				}
			}
			if !done {
				break
			}
			s.emitLocked("deployment_step_success", map[string]any{"plan": d.planJSON(), "currentStep": stepJSON(d.steps[d.cur])})
			d.cur++
			if d.cur < len(d.steps) {
				s.emitLocked("deployment_info", map[string]any{"plan": d.planJSON(), "currentStep": stepJSON(d.steps[d.cur])})
			}
		}
		if d.cur >= len(d.steps) {
			for i, e := range s.deployments {
				if e == d {
					s.deployments = append(s.deployments[:i], s.deployments[i+1:]...)
					break
				}
			}
			s.emitLocked("deployment_success", map[string]any{"id": d.id, "plan": d.planJSON()})
		}
	}
	s.keepInstancesLocked()
}

// keepInstancesLocked is Marathon's launch queue for apps no deployment
// touches: replace lost tasks (after the backoff), trim extra ones.
func (s *Server) keepInstancesLocked() {
	now := s.clock.Now()
	for _, id := range s.appIDsLocked() {
		a := s.apps[id]
		if len(s.lockersLocked(id)) > 0 || now.Before(a.backoffUntil) {
			continue
		}
		want := int(numOf(a.def["instances"]))
		ts := s.appTasksLocked(id)
		for i := len(ts); i < want; i++ {
			if !s.launchLocked(a) {
				break
			}
		}
		s.trimLocked(a, ts, want)
	}
}

func (s *Server) trimLocked(a *app, ts []*task, want int) {
	if len(ts) <= want {
		return
	}
	// ts is oldest first.
	excess := ts[want:]
	if specOf(a.def).KillSelection == "OLDEST_FIRST" {
		excess = ts[:len(ts)-want]
	}
	for _, t := range excess {
		s.killLocked(t)
	}
}

// actLocked performs one action for this tick and reports whether it is done.
func (s *Server) actLocked(act action) bool {
	a := s.apps[act.app]
	switch act.kind {
	case actStart:
		return true
	case actStop:
		for _, t := range s.sortedTasksLocked() {
			if t.appID == act.app {
				s.killLocked(t)
			}
		}
		for _, t := range s.tasks {
			if t.appID == act.app {
				return false
			}
		}
		s.emitLocked("app_terminated_event", map[string]any{"appId": act.app})
		return true
	case actScale:
		if a == nil {
			return true
		}
		want := int(numOf(a.def["instances"]))
		ts := s.appTasksLocked(a.id)
		for i := len(ts); i < want; i++ {
			if !s.launchLocked(a) {
				break
			}
		}
		s.trimLocked(a, ts, want)
		return s.allReadyLocked(a.id, want, time.Time{})
	case actRestart:
		if a == nil {
			return true
		}
		return s.restartTickLocked(a)
	}
	return true
}

func (s *Server) allReadyLocked(appID string, want int, newerThan time.Time) bool {
	n := 0
	for _, t := range s.tasks {
		if t.appID != appID {
			continue
		}
		if t.killing || t.version.Before(newerThan) || !t.ready() {
			return false
		}
		n++
	}
	return n == want
}

// restartTickLocked replaces old-version tasks following upgradeStrategy:
// keep ceil(instances*minimumHealthCapacity) ready, never run more than
// instances + floor(instances*maximumOverCapacity).
func (s *Server) restartTickLocked(a *app) bool {
	spec := specOf(a.def)
	want := spec.Instances
	minHealthy := int(math.Ceil(float64(want) * spec.UpgradeStrategy.MinimumHealthCapacity))
	maxTotal := want + int(math.Floor(float64(want)*spec.UpgradeStrategy.MaximumOverCapacity))
	var olds, news []*task
	readyOld, readyNew := 0, 0
	for _, t := range s.appTasksLocked(a.id) {
		if t.version.Before(a.lastConfigChangeAt) {
			olds = append(olds, t)
			if t.ready() {
				readyOld++
			}
		} else {
			news = append(news, t)
			if t.ready() {
				readyNew++
			}
		}
	}
	// Kill old tasks the healthy floor can spare (unready ones first).
	canKill := readyOld + readyNew - minHealthy
	for _, t := range olds {
		if !t.ready() {
			s.killLocked(t)
			continue
		}
		if canKill > 0 {
			s.killLocked(t)
			canKill--
		}
	}
	total := len(s.appTasksLocked(a.id)) + s.killingLocked(a.id)
	launched := false
	for i := len(news); i < want && total < maxTotal; i++ {
		if !s.launchLocked(a) {
			break
		}
		total++
		launched = true
	}
	if !launched && len(news) < want && total >= maxTotal && len(s.appTasksLocked(a.id)) > 0 && s.killingLocked(a.id) == 0 && readyNew == len(news) {
		// 1/0-style strategies leave no room: Marathon then kills one old
		// instance anyway so the upgrade can progress.
		for _, t := range olds {
			if !t.killing {
				s.killLocked(t)
				break
			}
		}
	}
	s.trimLocked(a, news, want)
	return len(olds) == 0 && s.killingLocked(a.id) == 0 && s.allReadyLocked(a.id, want, a.lastConfigChangeAt)
}

func (s *Server) killingLocked(appID string) int {
	n := 0
	for _, t := range s.tasks {
		if t.appID == appID && t.killing {
			n++
		}
	}
	return n
}

// --- HTTP ---

func (s *Server) handleDeployments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, d := range s.deployments {
		out = append(out, d.json())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteDeployment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	var d *deployment
	for _, e := range s.deployments {
		if e.id == id {
			d = e
		}
	}
	if d == nil {
		writeMessage(w, http.StatusNotFound, "DeploymentPlan "+id+" does not exist")
		return
	}
	if r.URL.Query().Get("force") == "true" {
		s.cancelLocked(d, "The deployment was cancelled by the user")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	s.cancelLocked(d, "The deployment was rolled back by the user")
	version := s.newVersionLocked()
	var steps [][]action
	target := map[string]map[string]any{}
	original := map[string]map[string]any{}
	for _, id := range d.affected {
		cur := s.apps[id]
		orig := d.original[id]
		if cur != nil {
			original[id] = s.appJSONLocked(cur)
		}
		switch {
		case orig == nil && cur != nil:
			delete(s.apps, id)
			steps = append(steps, []action{{actStop, id}})
		case orig != nil:
			def := deepCopy(orig).(map[string]any)
			delete(def, "version")
			delete(def, "versionInfo")
			if cur == nil {
				cur = &app{id: id}
				s.apps[id] = cur
				steps = append(steps, []action{{actStart, id}}, []action{{actScale, id}})
			} else {
				steps = append(steps, []action{{actRestart, id}})
			}
			cur.setDef(def, version, changeConfig)
			target[id] = s.appJSONLocked(cur)
		}
	}
	nd := s.startDeploymentLocked(version, steps, original, target)
	w.Header().Set("Marathon-Deployment-Id", nd.id)
	writeJSON(w, http.StatusOK, map[string]any{"version": fmtTime(version), "deploymentId": nd.id})
}
