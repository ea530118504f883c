package marathonsim

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ValidationError is a definition Marathon would refuse with 422.
type ValidationError struct {
	Message string
	Details []ErrorDetail
}

// ErrorDetail is one entry of the 422 body's details.
type ErrorDetail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

func (e *ValidationError) Error() string {
	var parts []string
	for _, d := range e.Details {
		parts = append(parts, d.Path+": "+strings.Join(d.Errors, "; "))
	}
	return e.Message + ": " + strings.Join(parts, ", ")
}

// ValidateApp checks an app definition the way POST /v2/apps does in the
// emulator: schema-v1.7 (unknown fields refused), 1.4/1.5 format conflicts
// and Marathon's rule-based checks. It returns nil or a *ValidationError.
func ValidateApp(body []byte) error {
	v, err := decodeJSON(body)
	if err != nil {
		return &ValidationError{Message: "Invalid JSON", Details: []ErrorDetail{{Path: "/", Errors: []string{err.Error()}}}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return &ValidationError{Message: "Invalid JSON", Details: []ErrorDetail{{Path: "/", Errors: []string{"error.expected.jsobject"}}}}
	}
	stripNulls(m)
	for _, k := range appInfoKeys {
		delete(m, k)
	}
	if verr := checkBody(m, false); verr != nil {
		return verr.exported()
	}
	def := plainNumbers(deepCopy(m)).(map[string]any)
	def["id"] = canonicalID(fmt.Sprint(def["id"]))
	if ds := convertLegacy(def); len(ds) > 0 {
		return (&validationError{message: "Object is not valid", details: ds}).exported()
	}
	next := servicePortMin
	applyDefaults(def, nil, portAssigner{used: map[int]bool{}, next: &next})
	if verr := checkRules(def); verr != nil {
		return verr.exported()
	}
	return nil
}

func (e *validationError) exported() *ValidationError {
	out := &ValidationError{Message: e.message}
	for _, d := range e.body()["details"].([]any) {
		m := d.(map[string]any)
		out.Details = append(out.Details, ErrorDetail{Path: m["path"].(string), Errors: m["errors"].([]string)})
	}
	return out
}

// detail is one violation: a path and a message.
type detail struct {
	path string
	msg  string
}

// validationError is a 422 answer: Marathon groups violations by path.
type validationError struct {
	message string // "Object is not valid" or "Invalid JSON"
	details []detail
}

func (e *validationError) Error() string {
	return fmt.Sprintf("%s: %v", e.message, e.details)
}

func (e *validationError) body() map[string]any {
	byPath := map[string][]string{}
	var order []string
	for _, d := range e.details {
		if _, ok := byPath[d.path]; !ok {
			order = append(order, d.path)
		}
		byPath[d.path] = append(byPath[d.path], d.msg)
	}
	sort.Strings(order)
	ds := make([]any, 0, len(order))
	for _, p := range order {
		ds = append(ds, map[string]any{"path": p, "errors": byPath[p]})
	}
	return map[string]any{"message": e.message, "details": ds}
}

// checkBody validates a request body against the schema. Type errors come
// first and alone, as play-json fails before Marathon's rule validator runs.
func checkBody(body map[string]any, ignoreUnknown bool) *validationError {
	vs, err := validateAppSchema(body)
	if err != nil {
		return &validationError{message: err.Error()}
	}
	var typeErrs, rules []detail
	for _, v := range vs {
		if ignoreUnknown && v.msg == unknownProperty {
			continue
		}
		if v.typeErr {
			typeErrs = append(typeErrs, detail{v.path, v.msg})
		} else {
			rules = append(rules, detail{v.path, v.msg})
		}
	}
	if len(typeErrs) > 0 {
		return &validationError{message: "Invalid JSON", details: typeErrs}
	}
	if len(rules) > 0 {
		return &validationError{message: "Object is not valid", details: rules}
	}
	return nil
}

var portNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// checkRules runs Marathon's rule-based checks (AppValidation) on a
// normalised app.
func checkRules(app map[string]any) *validationError {
	var ds []detail
	add := func(p, m string) { ds = append(ds, detail{p, m}) }
	if app["id"] == "/" {
		add("/id", "Path must contain at least one path element")
	}
	_, cmd := app["cmd"]
	_, args := app["args"]
	_, cont := app["container"]
	if !cmd && !args && !cont {
		add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if cmd && args {
		add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if c := obj(app["container"]); c != nil && c["type"] == "DOCKER" && c["docker"] == nil {
		add("/container/docker", "must not be empty")
	}
	nets := arr(app["networks"])
	hostOrBridge := 0
	for i, n := range nets {
		nm := obj(n)
		switch nm["mode"] {
		case "host", "container/bridge":
			hostOrBridge++
			if _, ok := nm["name"]; ok {
				add(fmt.Sprintf("/networks(%d)/name", i), "must be empty")
			}
		}
	}
	if hostOrBridge > 0 && len(nets) > 1 {
		add("/networks", "may only specify a single host or container/bridge network")
	}
	ports := 0
	checkNames := func(p string, items []any) {
		seen := map[string]bool{}
		for _, it := range items {
			name, _ := obj(it)["name"].(string)
			if name == "" {
				continue
			}
			if seen[name] {
				add(p, "Port names must be unique.")
			}
			seen[name] = true
		}
		ports = len(items)
	}
	if pds, ok := app["portDefinitions"]; ok {
		checkNames("/portDefinitions", arr(pds))
	} else {
		checkNames("/container/portMappings", arr(obj(app["container"])["portMappings"]))
	}
	for i, h := range arr(app["healthChecks"]) {
		hc := obj(h)
		if hc["protocol"] == "COMMAND" {
			if obj(hc["command"]) == nil {
				add(fmt.Sprintf("/healthChecks(%d)/command", i), "must not be empty")
			}
			continue
		}
		if _, ok := hc["port"]; ok {
			continue
		}
		if idx := int(numOf(hc["portIndex"])); idx >= ports {
			add(fmt.Sprintf("/healthChecks(%d)", i), "Health check port indices must address an element of the ports array or container port mappings.")
		}
	}
	for i, c := range arr(app["constraints"]) {
		ca := arr(c)
		if len(ca) < 2 {
			continue
		}
		op, _ := ca[1].(string)
		val := ""
		if len(ca) > 2 {
			val, _ = ca[2].(string)
		}
		p := fmt.Sprintf("/constraints(%d)", i)
		switch op {
		case "LIKE", "UNLIKE":
			if val == "" {
				add(p, op+" requires a non-empty value")
			} else if _, err := regexp.Compile("^(" + val + ")$"); err != nil {
				add(p, "'"+val+"' is not a valid regular expression")
			}
		case "MAX_PER":
			if _, err := strconv.Atoi(val); err != nil {
				add(p, "MAX_PER requires an integer value")
			}
		}
	}
	if obj(app["labels"])["MARATHON_SINGLE_INSTANCE_APP"] == "true" {
		if numOf(app["instances"]) > 1 {
			add("/instances", "got "+fmtNum(numOf(app["instances"]))+", expected 1 or less")
		}
		us := obj(app["upgradeStrategy"])
		if numOf(us["minimumHealthCapacity"]) != 0 || numOf(us["maximumOverCapacity"]) != 0 {
			add("/upgradeStrategy", "Single instance app may only have an upgrade strategy of 0/0")
		}
	}
	if isResident(app) {
		if numOf(obj(app["upgradeStrategy"])["maximumOverCapacity"]) != 0 {
			add("/upgradeStrategy/maximumOverCapacity", "got "+fmtNum(numOf(obj(app["upgradeStrategy"])["maximumOverCapacity"]))+", expected 0.0")
		}
	}
	for i, r := range arr(app["readinessChecks"]) {
		name, _ := obj(r)["portName"].(string)
		if name != "" && !portNameRE.MatchString(name) {
			add(fmt.Sprintf("/readinessChecks(%d)/portName", i), "must fully match regular expression '^[a-z][a-z0-9-]*$'")
		}
	}
	if len(ds) == 0 {
		return nil
	}
	return &validationError{message: "Object is not valid", details: ds}
}
