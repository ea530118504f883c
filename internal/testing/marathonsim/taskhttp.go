package marathonsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

func (s *Server) handleAppTasks(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	sp := servicePortsOf(a.def)
	if strings.Contains(r.Header.Get("Accept"), "text/plain") && !strings.Contains(r.Header.Get("Accept"), "json") {
		// 1.10-and-earlier text form: "appId servicePort host:port ..." per service port.
		var b strings.Builder
		for i, p := range sp {
			fmt.Fprintf(&b, "%s\t%d\t", strings.TrimPrefix(id, "/"), p)
			for _, t := range s.appTasksLocked(id) {
				if i < len(t.ports) {
					fmt.Fprintf(&b, "%s:%d\t", t.agent.Hostname, t.ports[i])
				}
			}
			b.WriteString("\n")
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, b.String())
		return
	}
	ts := []any{}
	for _, t := range s.sortedTasksLocked() {
		if t.appID == id {
			ts = append(ts, t.json(sp))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": ts})
}

// handleKillTasks is DELETE /v2/apps/{id}/tasks[/{taskId}]?host=&scale=.
func (s *Server) handleKillTasks(w http.ResponseWriter, r *http.Request, id, taskID string) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	var victims []*task
	for _, t := range s.appTasksLocked(id) {
		if (taskID == "" || t.id == taskID || t.instanceID == taskID) && (q.Get("host") == "" || q.Get("host") == t.agent.Hostname) {
			victims = append(victims, t)
		}
	}
	if taskID != "" && len(victims) == 0 {
		writeMessage(w, http.StatusNotFound, "Task '"+taskID+"' does not exist")
		return
	}
	s.killAndAnswerLocked(w, r, a, victims, taskID != "")
}

func (s *Server) killAndAnswerLocked(w http.ResponseWriter, r *http.Request, a *app, victims []*task, single bool) {
	sp := servicePortsOf(a.def)
	var out []any
	for _, t := range victims {
		out = append(out, t.json(sp))
		s.killLocked(t)
	}
	if r.URL.Query().Get("scale") == "true" && len(victims) > 0 {
		d := s.scaleDownLocked(map[string]int{a.id: len(victims)})
		deploymentResult(w, http.StatusOK, d)
		return
	}
	if single {
		writeJSON(w, http.StatusOK, map[string]any{"task": out[0]})
		return
	}
	if out == nil {
		out = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out})
}

// scaleDownLocked lowers instances by the killed counts in one deployment.
func (s *Server) scaleDownLocked(killed map[string]int) *deployment {
	version := s.newVersionLocked()
	original, target := map[string]map[string]any{}, map[string]map[string]any{}
	var step []action
	for id, n := range killed {
		a := s.apps[id]
		original[id] = s.appJSONLocked(a)
		def := deepCopy(a.def).(map[string]any)
		def["instances"] = max(0, numOf(def["instances"])-float64(n))
		a.setDef(def, version, changeScale)
		target[id] = s.appJSONLocked(a)
		step = append(step, action{actScale, id})
	}
	return s.startDeploymentLocked(version, [][]action{step}, original, target)
}

func (s *Server) handleAllTasks(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := []any{}
	for _, t := range s.sortedTasksLocked() {
		if status == "running" && t.state != "TASK_RUNNING" || status == "staging" && t.state != "TASK_STAGING" {
			continue
		}
		var sp []int
		if a, ok := s.apps[t.appID]; ok {
			sp = servicePortsOf(a.def)
		}
		ts = append(ts, t.json(sp))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": ts})
}

func (s *Server) handleDeleteTasks(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []string `json:"ids"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid JSON", "details": err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byApp := map[string][]*task{}
	for _, t := range s.sortedTasksLocked() {
		if contains(req.IDs, t.id) || contains(req.IDs, t.instanceID) {
			byApp[t.appID] = append(byApp[t.appID], t)
		}
	}
	if r.URL.Query().Get("scale") != "true" {
		out := []any{}
		for _, ts := range byApp {
			for _, t := range ts {
				out = append(out, t.json(nil))
				s.killLocked(t)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"tasks": out})
		return
	}
	killed := map[string]int{}
	for appID, ts := range byApp {
		for _, t := range ts {
			s.killLocked(t)
		}
		if _, ok := s.apps[appID]; ok {
			killed[appID] = len(ts)
		}
	}
	if len(killed) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"tasks": []any{}})
		return
	}
	deploymentResult(w, http.StatusOK, s.scaleDownLocked(killed))
}

func (s *Server) handleVersions(w http.ResponseWriter, id, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	if version == "" {
		vs := []string{}
		for i := len(a.history) - 1; i >= 0; i-- {
			vs = append(vs, fmtTime(a.history[i].version))
		}
		writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
		return
	}
	for _, h := range a.history {
		if fmtTime(h.version) == version {
			m := deepCopy(h.def).(map[string]any)
			m["version"] = version
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist in version "+version)
}
