package marathonsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", s.handlePing)
	mux.HandleFunc("GET /v2/info", s.handleInfo)
	mux.HandleFunc("GET /v2/leader", s.handleLeader)
	mux.HandleFunc("DELETE /v2/leader", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusOK, "Leadership abdicated")
	})
	mux.HandleFunc("GET /v2/apps", s.handleListApps)
	mux.HandleFunc("POST /v2/apps", s.handleCreateApp)
	mux.HandleFunc("PUT /v2/apps", s.handleBatchUpdate)
	mux.HandleFunc("PATCH /v2/apps", s.handleBatchUpdate)
	mux.HandleFunc("/v2/apps/{rest...}", s.handleAppPath)
	mux.HandleFunc("GET /v2/tasks", s.handleAllTasks)
	mux.HandleFunc("POST /v2/tasks/delete", s.handleDeleteTasks)
	mux.HandleFunc("GET /v2/deployments", s.handleDeployments)
	mux.HandleFunc("DELETE /v2/deployments/{id}", s.handleDeleteDeployment)
	mux.HandleFunc("GET /v2/queue", s.handleQueue)
	mux.HandleFunc("DELETE /v2/queue/{rest...}", s.handleQueueDelay)
	mux.HandleFunc("GET /v2/events", s.serveEvents)
	mux.HandleFunc("GET /master/slaves", s.handleSlaves)
	mux.HandleFunc("GET /slaves", s.handleSlaves)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg})
}

func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Through DC/OS Admin Router the APIs live under /marathon and /mesos
	// (go-marathon's DCOSToken mode prefixes /marathon).
	for _, p := range []string{"/marathon", "/mesos"} {
		if strings.HasPrefix(r.URL.Path, p+"/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, p)
			r2.URL.RawPath = ""
			r = r2
			break
		}
	}
	var body []byte
	if isWrite(r.Method) && r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, 8<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	f, latency := s.matchFault(r)
	if r.URL.Path != "/v2/events" {
		latency += f.Delay
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
	}
	rec := &statusRecorder{ResponseWriter: w}
	if f.Status != 0 {
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(f.Status)
			_, _ = io.WriteString(rec, f.Body)
		} else if f.Status == http.StatusServiceUnavailable {
			rec.WriteHeader(f.Status)
		} else {
			writeMessage(rec, f.Status, http.StatusText(f.Status))
		}
	} else {
		s.mux.ServeHTTP(rec, r)
	}
	if isWrite(r.Method) && strings.HasPrefix(r.URL.Path, "/v2/") {
		s.mu.Lock()
		s.writes = append(s.writes, Write{
			Time: s.clock.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Body: body, Status: rec.status,
		})
		s.mu.Unlock()
	}
}

// matchFault returns the first active fault for the request (consuming one
// of its Remaining answers) and the global latency.
func (s *Server) matchFault(r *http.Request) (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	kept := s.faults[:0]
	var hit Fault
	found := false
	for _, f := range s.faults {
		if !f.Until.IsZero() && !now.Before(f.Until) {
			continue
		}
		if !found && faultMatches(f, r) {
			hit, found = f, true
			if f.Remaining > 0 {
				f.Remaining--
				if f.Remaining == 0 {
					continue
				}
			}
		}
		kept = append(kept, f)
	}
	s.faults = kept
	return hit, s.latency
}

func faultMatches(f Fault, r *http.Request) bool {
	if f.Methods != "" {
		ok := false
		for _, m := range strings.Split(f.Methods, ",") {
			if strings.EqualFold(strings.TrimSpace(m), r.Method) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if f.Paths == "" {
		return true
	}
	for _, p := range strings.Split(f.Paths, ",") {
		p = strings.TrimSpace(p)
		if strings.Contains(p, "*") {
			if ok, _ := path.Match(p, r.URL.Path); ok {
				return true
			}
		} else if strings.HasPrefix(r.URL.Path, p) {
			return true
		}
	}
	return false
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "must-revalidate,no-cache,no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, "pong")
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "pong\n")
}

func (s *Server) handleLeader(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"leader": s.leader})
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	host, port := s.leader, 8080
	if i := strings.LastIndex(s.leader, ":"); i >= 0 {
		host = s.leader[:i]
		if p, err := strconv.Atoi(s.leader[i+1:]); err == nil {
			port = p
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "marathon", "version": "1.7.216", "buildref": "emulated", "elected": true,
		"leader": s.leader, "frameworkId": clusterID + "-0000",
		"marathon_config": map[string]any{
			"checkpoint": true, "default_network_name": defaultNetworkName, "executor": "//cmd",
			"failover_timeout": 604800, "features": []string{}, "framework_name": "marathon", "ha": true,
			"hostname": host, "local_port_max": servicePortMax, "local_port_min": servicePortMin,
			"master": "zk://zk-1.zk:2181/mesos", "mesos_role": "*", "mesos_user": "root",
			"webui_url": "http://" + s.leader, "task_launch_timeout": 300000,
		},
		"zookeeper_config": map[string]any{
			"zk": "zk://zk-1.zk:2181/marathon", "zk_compression": true, "zk_compression_threshold": 65536,
			"zk_connection_timeout": 10000, "zk_max_node_size": 1024000, "zk_max_versions": 50,
			"zk_session_timeout": 10000, "zk_timeout": 10000,
		},
		"http_config": map[string]any{"http_port": port, "https_port": 8443},
	})
}

func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	q := []any{}
	for _, id := range s.appIDsLocked() {
		a := s.apps[id]
		want := int(numOf(a.def["instances"]))
		missing := want - len(s.appTasksLocked(id))
		if missing <= 0 {
			continue
		}
		left := a.backoffUntil.Sub(now)
		if left < 0 {
			left = 0
		}
		q = append(q, map[string]any{
			"app": s.appJSONLocked(a), "count": missing, "role": "*",
			"delay":                  map[string]any{"timeLeftSeconds": int(left.Seconds()), "overdue": left == 0},
			"since":                  fmtTime(a.version),
			"processedOffersSummary": map[string]any{"processedOffersCount": 0, "unusedOffersCount": 0},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": q})
}

func (s *Server) handleQueueDelay(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if !strings.HasSuffix(rest, "/delay") {
		writeMessage(w, http.StatusNotFound, "not found")
		return
	}
	id := canonicalID(strings.TrimSuffix(rest, "/delay"))
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	if !ok {
		writeMessage(w, http.StatusNotFound, "App '"+id+"' does not exist")
		return
	}
	a.backoffUntil = time.Time{}
	w.WriteHeader(http.StatusNoContent)
}
