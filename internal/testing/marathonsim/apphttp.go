package marathonsim

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// readJSON decodes a request body. Malformed JSON is a 400 whose details is
// the parser's message (a string, unlike the 422 details array).
func readJSON(w http.ResponseWriter, r *http.Request) (any, bool) {
	b, _ := io.ReadAll(r.Body)
	v, err := decodeJSON(b)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "Invalid JSON", "details": err.Error()})
		return nil, false
	}
	return v, true
}

func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	v, ok := readJSON(w, r)
	if !ok {
		return nil, false
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		writeValidation(w, &validationError{message: "Invalid JSON", details: []detail{{"/", "error.expected.jsobject"}}})
		return nil, false
	}
	return m, true
}

func writeValidation(w http.ResponseWriter, e *validationError) {
	writeJSON(w, http.StatusUnprocessableEntity, e.body())
}

func deploymentResult(w http.ResponseWriter, status int, d *deployment) {
	w.Header().Set("Marathon-Deployment-Id", d.id)
	writeJSON(w, status, map[string]any{"version": fmtTime(d.version), "deploymentId": d.id})
}

const (
	changeNone = iota
	changeScale
	changeConfig
)

func (s *Server) handleListApps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e := parseEmbed(q["embed"])
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []any{}
	for _, id := range s.appIDsLocked() {
		a := s.apps[id]
		if f := q.Get("id"); f != "" && !strings.Contains(strings.ToLower(id), strings.ToLower(f)) {
			continue
		}
		if f := q.Get("cmd"); f != "" {
			cmd, _ := a.def["cmd"].(string)
			if !strings.Contains(cmd, f) {
				continue
			}
		}
		if f := q.Get("label"); f != "" && !matchLabelSelector(f, obj(a.def["labels"])) {
			continue
		}
		out = append(out, s.appInfoLocked(a, e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

func (s *Server) handleCreateApp(w http.ResponseWriter, r *http.Request) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	idStr, isStr := body["id"].(string)
	if !isStr {
		stripNulls(body)
		if verr := checkBody(body, s.ignoreUnknown); verr != nil {
			writeValidation(w, verr)
			return
		}
	}
	id := canonicalID(idStr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.apps[id]; exists {
		writeMessage(w, http.StatusConflict, "An app with id ["+id+"] already exists.")
		return
	}
	d, verr := s.createLocked(r, body, id)
	if verr != nil {
		writeValidation(w, verr)
		return
	}
	info := s.appInfoLocked(s.apps[id], embed{})
	w.Header().Set("Location", id)
	w.Header().Set("Marathon-Deployment-Id", d.id)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) createLocked(r *http.Request, body map[string]any, id string) (*deployment, *validationError) {
	def, verr := s.prepareLocked(body, id, nil, false)
	if verr != nil {
		return nil, verr
	}
	a := &app{id: id}
	version := s.newVersionLocked()
	a.setDef(def, version, changeConfig)
	s.apps[id] = a
	s.emitLocked("api_post_event", map[string]any{"clientIp": remoteIP(r), "uri": r.URL.Path, "appDefinition": s.appJSONLocked(a)})
	steps := [][]action{{{actStart, id}}}
	if numOf(def["instances"]) > 0 {
		steps = append(steps, []action{{actScale, id}})
	}
	d := s.startDeploymentLocked(version, steps, map[string]map[string]any{id: nil}, map[string]map[string]any{id: s.appJSONLocked(a)})
	return d, nil
}

// updateLocked applies one app update; the caller checked locks.
func (s *Server) updateLocked(r *http.Request, a *app, body map[string]any, partial bool, version time.Time) ([]action, map[string]any, *validationError) {
	def, verr := s.prepareLocked(body, a.id, a, partial)
	if verr != nil {
		return nil, nil, verr
	}
	original := s.appJSONLocked(a)
	kind := changeNone
	switch {
	case configDiffers(a.def, def):
		kind = changeConfig
	case numOf(a.def["instances"]) != numOf(def["instances"]):
		kind = changeScale
	}
	a.setDef(def, version, kind)
	s.emitLocked("api_post_event", map[string]any{"clientIp": remoteIP(r), "uri": r.URL.Path, "appDefinition": s.appJSONLocked(a)})
	switch kind {
	case changeConfig:
		return []action{{actRestart, a.id}}, original, nil
	case changeScale:
		return []action{{actScale, a.id}}, original, nil
	}
	return nil, original, nil
}

func (s *Server) handleAppPath(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimSuffix(r.PathValue("rest"), "/")
	switch {
	case strings.HasSuffix(rest, "/restart") && r.Method == http.MethodPost:
		s.handleRestart(w, r, canonicalID(strings.TrimSuffix(rest, "/restart")))
	case strings.Contains(rest, "/tasks/") && r.Method == http.MethodDelete:
		i := strings.LastIndex(rest, "/tasks/")
		s.handleKillTasks(w, r, canonicalID(rest[:i]), rest[i+len("/tasks/"):])
	case strings.HasSuffix(rest, "/tasks"):
		id := canonicalID(strings.TrimSuffix(rest, "/tasks"))
		switch r.Method {
		case http.MethodGet:
			s.handleAppTasks(w, r, id)
		case http.MethodDelete:
			s.handleKillTasks(w, r, id, "")
		default:
			writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	case strings.Contains(rest, "/versions") && r.Method == http.MethodGet:
		i := strings.LastIndex(rest, "/versions")
		s.handleVersions(w, canonicalID(rest[:i]), strings.TrimPrefix(rest[i+len("/versions"):], "/"))
	default:
		id := canonicalID(rest)
		switch r.Method {
		case http.MethodGet:
			s.handleGetApp(w, r, rest, id)
		case http.MethodPut:
			s.handlePutApp(w, r, id, r.URL.Query().Get("partialUpdate") != "false", true)
		case http.MethodPatch:
			s.handlePutApp(w, r, id, true, false)
		case http.MethodDelete:
			s.handleDeleteApp(w, r, id)
		default:
			writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed")
		}
	}
}

func (s *Server) handleGetApp(w http.ResponseWriter, r *http.Request, rest, id string) {
	e := parseEmbed(r.URL.Query()["embed"])
	e.tasks, e.lastTaskFailure = true, true
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasSuffix(rest, "*") {
		prefix := canonicalID(strings.TrimSuffix(rest, "*"))
		list := []any{}
		for _, aid := range s.appIDsLocked() {
			if strings.HasPrefix(aid, strings.TrimSuffix(prefix, "/")+"/") {
				list = append(list, s.appInfoLocked(s.apps[aid], e))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"*": list})
		return
	}
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": s.appInfoLocked(a, e)})
}

func (s *Server) handlePutApp(w http.ResponseWriter, r *http.Request, id string, partial, mayCreate bool) {
	body, ok := readObject(w, r)
	if !ok {
		return
	}
	force := r.URL.Query().Get("force") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	a, exists := s.apps[id]
	if !exists {
		if !mayCreate {
			writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
			return
		}
		d, verr := s.createLocked(r, body, id)
		if verr != nil {
			writeValidation(w, verr)
			return
		}
		w.Header().Set("Location", id)
		deploymentResult(w, http.StatusCreated, d)
		return
	}
	lockers := s.lockersLocked(id)
	if len(lockers) > 0 && !force {
		writeJSON(w, http.StatusConflict, lockedBody(lockers))
		return
	}
	// Validate before cancelling anything: a rejected write changes nothing.
	if _, verr := s.prepareLocked(deepCopy(body).(map[string]any), id, a, partial); verr != nil {
		writeValidation(w, verr)
		return
	}
	for _, d := range lockers {
		s.cancelLocked(d, "The deployment was cancelled by a forced update")
	}
	version := s.newVersionLocked()
	acts, original, verr := s.updateLocked(r, a, body, partial, version)
	if verr != nil {
		writeValidation(w, verr)
		return
	}
	var steps [][]action
	if acts != nil {
		steps = append(steps, acts)
	}
	d := s.startDeploymentLocked(version, steps, map[string]map[string]any{id: original}, map[string]map[string]any{id: s.appJSONLocked(a)})
	deploymentResult(w, http.StatusOK, d)
}

func (s *Server) handleBatchUpdate(w http.ResponseWriter, r *http.Request) {
	v, ok := readJSON(w, r)
	if !ok {
		return
	}
	items, isArr := v.([]any)
	if !isArr {
		writeValidation(w, &validationError{message: "Invalid JSON", details: []detail{{"/", "error.expected.jsarray"}}})
		return
	}
	force := r.URL.Query().Get("force") == "true"
	partial := r.Method == http.MethodPatch || r.URL.Query().Get("partialUpdate") != "false"
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for i, it := range items {
		m, isObj := it.(map[string]any)
		id, isStr := m["id"].(string)
		if !isObj || !isStr {
			writeValidation(w, &validationError{message: "Invalid JSON", details: []detail{{fmt.Sprintf("(%d)/id", i), "error.path.missing"}}})
			return
		}
		ids = append(ids, canonicalID(id))
	}
	lockers := s.lockersLocked(ids...)
	if len(lockers) > 0 && !force {
		writeJSON(w, http.StatusConflict, lockedBody(lockers))
		return
	}
	for i, it := range items {
		var prev *app
		if a, ok := s.apps[ids[i]]; ok {
			prev = a
		}
		if _, verr := s.prepareLocked(deepCopy(it).(map[string]any), ids[i], prev, partial); verr != nil {
			writeValidation(w, verr)
			return
		}
	}
	for _, d := range lockers {
		s.cancelLocked(d, "The deployment was cancelled by a forced update")
	}
	version := s.newVersionLocked()
	var steps [][]action
	original, target := map[string]map[string]any{}, map[string]map[string]any{}
	var step []action
	for i, it := range items {
		id := ids[i]
		a, exists := s.apps[id]
		if !exists {
			def, _ := s.prepareLocked(it.(map[string]any), id, nil, false)
			a = &app{id: id}
			a.setDef(def, version, changeConfig)
			s.apps[id] = a
			original[id] = nil
			step = append(step, action{actStart, id}, action{actScale, id})
		} else {
			acts, orig, _ := s.updateLocked(r, a, it.(map[string]any), partial, version)
			original[id] = orig
			step = append(step, acts...)
		}
		target[id] = s.appJSONLocked(a)
	}
	if len(step) > 0 {
		steps = append(steps, step)
	}
	d := s.startDeploymentLocked(version, steps, original, target)
	deploymentResult(w, http.StatusOK, d)
}

func (s *Server) handleDeleteApp(w http.ResponseWriter, r *http.Request, id string) {
	// DELETE is the one write whose force defaults to true.
	force := r.URL.Query().Get("force") != "false"
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	lockers := s.lockersLocked(id)
	if len(lockers) > 0 && !force {
		writeJSON(w, http.StatusConflict, lockedBody(lockers))
		return
	}
	for _, d := range lockers {
		s.cancelLocked(d, "The deployment was cancelled because the app was deleted")
	}
	original := s.appJSONLocked(a)
	delete(s.apps, id)
	version := s.newVersionLocked()
	d := s.startDeploymentLocked(version, [][]action{{{actStop, id}}}, map[string]map[string]any{id: original}, map[string]map[string]any{id: nil})
	deploymentResult(w, http.StatusOK, d)
}

func (s *Server) handleRestart(w http.ResponseWriter, r *http.Request, id string) {
	force := r.URL.Query().Get("force") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	lockers := s.lockersLocked(id)
	if len(lockers) > 0 && !force {
		writeJSON(w, http.StatusConflict, lockedBody(lockers))
		return
	}
	for _, d := range lockers {
		s.cancelLocked(d, "The deployment was cancelled by a forced restart")
	}
	original := s.appJSONLocked(a)
	version := s.newVersionLocked()
	a.setDef(a.def, version, changeConfig)
	d := s.startDeploymentLocked(version, [][]action{{{actRestart, id}}}, map[string]map[string]any{id: original}, map[string]map[string]any{id: s.appJSONLocked(a)})
	deploymentResult(w, http.StatusOK, d)
}
