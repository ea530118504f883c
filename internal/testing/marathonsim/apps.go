package marathonsim

import (
	"reflect"
	"sort"
	"strings"
	"time"
)

type app struct {
	id                 string
	def                map[string]any // normalised, without version fields
	version            time.Time
	lastScalingAt      time.Time
	lastConfigChangeAt time.Time
	history            []appVersion
	lastFailure        map[string]any
	backoffUntil       time.Time
}

type appVersion struct {
	version time.Time
	def     map[string]any
}

// setDef stores a new definition; kind (changeNone/Scale/Config) decides
// which of versionInfo's timestamps move with the version.
func (a *app) setDef(def map[string]any, version time.Time, kind int) {
	a.def = def
	a.version = version
	if kind >= changeScale || a.lastScalingAt.IsZero() {
		a.lastScalingAt = version
	}
	if kind == changeConfig || a.lastConfigChangeAt.IsZero() {
		a.lastConfigChangeAt = version
	}
	a.history = append(a.history, appVersion{version: version, def: deepCopy(def).(map[string]any)})
	if len(a.history) > 50 {
		a.history = a.history[len(a.history)-50:]
	}
}

// configDiffers reports whether two definitions differ in more than instances.
func configDiffers(a, b map[string]any) bool {
	x := deepCopy(a).(map[string]any)
	y := deepCopy(b).(map[string]any)
	delete(x, "instances")
	delete(y, "instances")
	return !reflect.DeepEqual(x, y)
}

// newVersionLocked returns a fresh, strictly increasing version timestamp
// (Marathon versions are timestamps; two writes in one millisecond with a
// fake clock must still differ).
func (s *Server) newVersionLocked() time.Time {
	t := s.clock.Now().UTC().Truncate(time.Millisecond)
	if !t.After(s.lastVersion) {
		t = s.lastVersion.Add(time.Millisecond)
	}
	s.lastVersion = t
	return t
}

func (s *Server) appIDsLocked() []string {
	ids := make([]string, 0, len(s.apps))
	for id := range s.apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// portsInUseLocked returns the service ports of every app but except.
func (s *Server) portAssignerLocked(except string) portAssigner {
	used := map[int]bool{}
	for id, a := range s.apps {
		if id == except {
			continue
		}
		for _, p := range servicePortsOf(a.def) {
			used[p] = true
		}
	}
	return portAssigner{used: used, next: &s.nextSvcPort}
}

// prepareLocked turns a request body into a stored definition: schema
// check, merge (partial update), legacy conversion, defaults, rules.
func (s *Server) prepareLocked(body map[string]any, id string, prev *app, partial bool) (map[string]any, *validationError) {
	stripNulls(body)
	for _, k := range appInfoKeys {
		delete(body, k)
	}
	body["id"] = id
	if verr := checkBody(body, s.ignoreUnknown); verr != nil {
		return nil, verr
	}
	def := plainNumbers(deepCopy(body)).(map[string]any)
	var prevDef map[string]any
	if prev != nil {
		prevDef = prev.def
		if partial {
			def = mergeUpdate(prev.def, def)
		}
	}
	delete(def, "version")
	delete(def, "versionInfo")
	if ds := convertLegacy(def); len(ds) > 0 {
		return nil, &validationError{message: "Object is not valid", details: ds}
	}
	applyDefaults(def, prevDef, s.portAssignerLocked(id))
	def["id"] = id
	if verr := checkRules(def); verr != nil {
		return nil, verr
	}
	return def, nil
}

// appJSONLocked is the app definition as Marathon prints it.
func (s *Server) appJSONLocked(a *app) map[string]any {
	m := deepCopy(a.def).(map[string]any)
	m["version"] = fmtTime(a.version)
	m["versionInfo"] = map[string]any{
		"lastScalingAt":      fmtTime(a.lastScalingAt),
		"lastConfigChangeAt": fmtTime(a.lastConfigChangeAt),
	}
	return m
}

type embed struct {
	tasks, lastTaskFailure, taskStats, readiness bool
}

var embedAll = embed{tasks: true, lastTaskFailure: true}

// parseEmbed understands the values InfoEmbedResolver does, with any of the
// "apps.", "app.", "group.apps." prefixes.
func parseEmbed(values []string) embed {
	var e embed
	for _, v := range values {
		for _, p := range []string{"group.apps.", "apps.", "app."} {
			v = strings.TrimPrefix(v, p)
		}
		switch v {
		case "tasks":
			e.tasks = true
		case "lastTaskFailure":
			e.lastTaskFailure = true
		case "failures":
			e.tasks, e.lastTaskFailure = true, true
		case "taskStats":
			e.taskStats = true
		case "readiness":
			e.readiness = true
		}
	}
	return e
}

// appInfoLocked is AppInfo: the app plus counts and deployments (always),
// and what embed asks for.
func (s *Server) appInfoLocked(a *app, e embed) map[string]any {
	m := s.appJSONLocked(a)
	staged, running, healthy, unhealthy := s.countsLocked(a.id)
	m["tasksStaged"], m["tasksRunning"], m["tasksHealthy"], m["tasksUnhealthy"] = staged, running, healthy, unhealthy
	deps := []any{}
	for _, d := range s.lockersLocked(a.id) {
		deps = append(deps, map[string]any{"id": d.id})
	}
	m["deployments"] = deps
	if e.tasks {
		ts := []any{}
		sp := servicePortsOf(a.def)
		for _, t := range s.sortedTasksLocked() {
			if t.appID == a.id {
				ts = append(ts, t.json(sp))
			}
		}
		m["tasks"] = ts
	}
	if e.lastTaskFailure && a.lastFailure != nil {
		m["lastTaskFailure"] = a.lastFailure
	}
	if e.readiness {
		m["readinessCheckResults"] = []any{}
	}
	if e.taskStats {
		m["tasksStats"] = s.taskStatsLocked(a)
	}
	return m
}

func (s *Server) taskStatsLocked(a *app) map[string]any {
	stats := func(filter func(*task) bool) map[string]any {
		c := map[string]int{"staged": 0, "running": 0, "healthy": 0, "unhealthy": 0}
		n := 0
		for _, t := range s.tasks {
			if t.appID != a.id || !filter(t) {
				continue
			}
			n++
			switch t.state {
			case "TASK_RUNNING":
				c["running"]++
			default:
				c["staged"]++
			}
			if len(t.health) > 0 {
				if healthyResults(t.health) {
					c["healthy"]++
				} else {
					c["unhealthy"]++
				}
			}
		}
		if n == 0 {
			return nil
		}
		return map[string]any{"stats": map[string]any{"counts": c}}
	}
	out := map[string]any{}
	for k, f := range map[string]func(*task) bool{
		"startedAfterLastScaling": func(t *task) bool { return !t.stagedAt.Before(a.lastScalingAt) },
		"withLatestConfig":        func(t *task) bool { return !t.version.Before(a.lastConfigChangeAt) },
		"withOutdatedConfig":      func(t *task) bool { return t.version.Before(a.lastConfigChangeAt) },
		"totalSummary":            func(*task) bool { return true },
	} {
		if st := f; st != nil {
			if v := stats(f); v != nil {
				out[k] = v
			}
		}
	}
	return out
}

// matchLabelSelector implements ?label= (k, k==v, k!=v, k in (a,b), k notin (a,b); comma = AND).
func matchLabelSelector(sel string, labels map[string]any) bool {
	for _, term := range splitSelector(sel) {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		get := func(k string) (string, bool) {
			v, ok := labels[strings.TrimSpace(k)].(string)
			return v, ok
		}
		switch {
		case strings.Contains(term, "!="):
			kv := strings.SplitN(term, "!=", 2)
			if v, ok := get(kv[0]); ok && v == strings.TrimSpace(kv[1]) {
				return false
			}
		case strings.Contains(term, "=="):
			kv := strings.SplitN(term, "==", 2)
			if v, ok := get(kv[0]); !ok || v != strings.TrimSpace(kv[1]) {
				return false
			}
		case strings.Contains(term, " notin "), strings.Contains(term, " in "):
			neg := strings.Contains(term, " notin ")
			sep := " in "
			if neg {
				sep = " notin "
			}
			kv := strings.SplitN(term, sep, 2)
			set := strings.Split(strings.Trim(strings.TrimSpace(kv[1]), "()"), ",")
			v, ok := get(kv[0])
			in := false
			for _, x := range set {
				if ok && strings.TrimSpace(x) == v {
					in = true
				}
			}
			if in == neg {
				return false
			}
		default:
			if _, ok := get(term); !ok {
				return false
			}
		}
	}
	return true
}

// splitSelector splits on commas outside parentheses.
func splitSelector(sel string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range sel {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, sel[start:i])
				start = i + 1
			}
		}
	}
	return append(out, sel[start:])
}
