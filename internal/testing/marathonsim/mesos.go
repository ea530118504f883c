package marathonsim

import (
	"net/http"
	"strings"
)

// handleSlaves is the Mesos master's GET /master/slaves (SlavesWriter). A
// non-leading master answers 307 to the leader instead.
func (s *Server) handleSlaves(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mesosURL != "" {
		target := strings.TrimSuffix(s.mesosURL, "/") + r.URL.Path
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	filter := r.URL.Query().Get("slave_id")
	slaves := []any{}
	for _, a := range s.agents {
		if filter != "" && a.ID != filter {
			continue
		}
		slaves = append(slaves, s.slaveJSONLocked(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"slaves": slaves, "recovered_slaves": []any{}})
}

func (s *Server) slaveJSONLocked(a agentState) map[string]any {
	used := map[string]any{"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
	for _, t := range s.tasks {
		if t.agent.ID != a.ID {
			continue
		}
		if app, ok := s.apps[t.appID]; ok {
			for _, k := range []string{"cpus", "mem", "disk", "gpus"} {
				used[k] = used[k].(float64) + numOf(app.def[k])
			}
		}
	}
	total := map[string]any{"cpus": 4.0, "mem": 14861.0, "disk": 35164.0, "gpus": 0.0, "ports": "[1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]"}
	attrs := map[string]any{}
	for k, v := range a.Attributes {
		attrs[k] = v
	}
	return map[string]any{
		"id": a.ID, "hostname": a.Hostname, "port": 5051,
		"pid":                  "slave(1)@" + a.IP + ":5051",
		"attributes":           attrs,
		"registered_time":      float64(a.registered.UnixNano()) / 1e9,
		"resources":            total,
		"used_resources":       used,
		"offered_resources":    map[string]any{"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0},
		"reserved_resources":   map[string]any{},
		"unreserved_resources": total,
		"active":               !a.Inactive,
		"deactivated":          a.Inactive,
		"version":              "1.7.3",
		"capabilities":         []string{"MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"},
	}
}
