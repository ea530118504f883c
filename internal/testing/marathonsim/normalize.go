package marathonsim

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
)

const (
	servicePortMin     = 10000
	servicePortMax     = 20000
	defaultNetworkName = "container-network"
)

// Keys of AppInfo that Marathon computes; clients that GET, modify and PUT
// an app send them back and Marathon ignores them.
var appInfoKeys = []string{
	"tasks", "deployments", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
	"lastTaskFailure", "taskStats", "tasksStats", "readinessCheckResults", "storeUrls",
}

// Empty collections Marathon leaves out of its answers (RAML omitEmpty).
var omitEmptyKeys = []string{"args", "constraints", "dependencies", "env", "fetch", "healthChecks", "readinessChecks", "secrets"}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, &json.SyntaxError{Offset: d.InputOffset()}
	}
	return v, nil
}

// canonicalID makes an app id absolute: "a/b/" -> "/a/b".
func canonicalID(id string) string {
	if id == "" {
		return "/"
	}
	return path.Clean("/" + strings.Trim(id, "/"))
}

// stripNulls drops null members: Marathon's readers treat null as absent.
func stripNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = stripNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stripNulls(e)
		}
	}
	return v
}

// plainNumbers turns json.Number into float64 so that stored apps compare
// and print the same whatever literal the client used ("1.0" vs "1").
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainNumbers(e)
		}
	}
	return v
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func arr(v any) []any          { a, _ := v.([]any); return a }

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// portAssigner hands out cluster-unique service ports.
type portAssigner struct {
	used map[int]bool
	next *int
}

func (p portAssigner) take(prev int) int {
	if prev != 0 && !p.used[prev] {
		p.used[prev] = true
		return prev
	}
	for i := 0; i <= servicePortMax-servicePortMin; i++ {
		port := *p.next
		*p.next++
		if *p.next > servicePortMax {
			*p.next = servicePortMin
		}
		if !p.used[port] {
			p.used[port] = true
			return port
		}
	}
	return 0
}

func isResident(app map[string]any) bool {
	for _, v := range arr(obj(app["container"])["volumes"]) {
		if _, ok := obj(v)["persistent"]; ok {
			return true
		}
	}
	return false
}

// applyDefaults fills what Marathon fills (API-NOTES §3). prev is the
// stored app being replaced (nil on create): assigned service ports of the
// same index are kept when the client sends 0.
func applyDefaults(app, prev map[string]any, ports portAssigner) {
	for _, kv := range []struct {
		k string
		v any
	}{
		{"instances", 1.0}, {"cpus", 1.0}, {"mem", 128.0}, {"disk", 0.0}, {"gpus", 0.0},
		{"executor", ""}, {"backoffSeconds", 1.0}, {"backoffFactor", 1.15},
		{"maxLaunchDelaySeconds", 3600.0}, {"requirePorts", false},
		{"labels", map[string]any{}}, {"killSelection", "YOUNGEST_FIRST"},
	} {
		setDefault(app, kv.k, kv.v)
	}
	resident := isResident(app)
	single := obj(app["labels"])["MARATHON_SINGLE_INSTANCE_APP"] == "true"
	minH, maxO := 1.0, 1.0
	switch {
	case resident:
		minH, maxO = 0.5, 0
	case single:
		minH, maxO = 0, 0
	}
	us := obj(app["upgradeStrategy"])
	if us == nil {
		us = map[string]any{}
		app["upgradeStrategy"] = us
	}
	setDefault(us, "minimumHealthCapacity", minH)
	setDefault(us, "maximumOverCapacity", maxO)
	if resident {
		setDefault(app, "unreachableStrategy", "disabled")
	} else {
		setDefault(app, "unreachableStrategy", map[string]any{"inactiveAfterSeconds": 0.0, "expungeAfterSeconds": 0.0})
	}
	if u := obj(app["unreachableStrategy"]); u != nil {
		setDefault(u, "inactiveAfterSeconds", 0.0)
		setDefault(u, "expungeAfterSeconds", 0.0)
	}

	nets := arr(app["networks"])
	if len(nets) == 0 {
		nets = []any{map[string]any{"mode": "host"}}
		app["networks"] = nets
	}
	for _, n := range nets {
		nm := obj(n)
		setDefault(nm, "mode", "container")
		if nm["mode"] == "container" {
			setDefault(nm, "name", defaultNetworkName)
		}
		if isEmpty(nm["labels"]) {
			delete(nm, "labels")
		}
	}
	mode := obj(nets[0])["mode"]

	c := obj(app["container"])
	if c != nil {
		setDefault(c, "type", "DOCKER")
		setDefault(c, "volumes", []any{})
		if d := obj(c["docker"]); d != nil {
			setDefault(d, "forcePullImage", false)
			setDefault(d, "privileged", false)
			setDefault(d, "parameters", []any{})
		}
	}
	prevPorts := prevServicePorts(prev)
	if mode == "host" {
		if c != nil {
			delete(c, "portMappings")
		}
		if _, ok := app["portDefinitions"]; !ok {
			app["portDefinitions"] = []any{map[string]any{"port": 0.0, "name": "default", "protocol": "tcp"}}
		}
		for i, p := range arr(app["portDefinitions"]) {
			pd := obj(p)
			setDefault(pd, "protocol", "tcp")
			if isEmpty(pd["labels"]) {
				delete(pd, "labels")
			}
			if numOf(pd["port"]) == 0 {
				pd["port"] = float64(ports.take(prevAt(prevPorts, i)))
			} else {
				ports.used[int(numOf(pd["port"]))] = true
			}
		}
	} else {
		app["requirePorts"] = false
		delete(app, "portDefinitions")
		if c == nil {
			c = map[string]any{"type": "MESOS", "volumes": []any{}}
			app["container"] = c
		}
		if _, ok := c["portMappings"]; !ok {
			c["portMappings"] = []any{map[string]any{"containerPort": 0.0, "name": "default"}}
		}
		for i, p := range arr(c["portMappings"]) {
			pm := obj(p)
			setDefault(pm, "containerPort", 0.0)
			if mode == "container/bridge" {
				setDefault(pm, "hostPort", 0.0)
			}
			setDefault(pm, "protocol", "tcp")
			setDefault(pm, "labels", map[string]any{})
			if numOf(pm["servicePort"]) == 0 {
				pm["servicePort"] = float64(ports.take(prevAt(prevPorts, i)))
			} else {
				ports.used[int(numOf(pm["servicePort"]))] = true
			}
		}
	}

	for _, h := range arr(app["healthChecks"]) {
		hc := obj(h)
		setDefault(hc, "protocol", "HTTP")
		for _, kv := range []struct {
			k string
			v float64
		}{{"gracePeriodSeconds", 300}, {"intervalSeconds", 60}, {"timeoutSeconds", 20}, {"maxConsecutiveFailures", 3}, {"delaySeconds", 15}} {
			setDefault(hc, kv.k, kv.v)
		}
		setDefault(hc, "ipProtocol", "IPv4")
		proto := hc["protocol"]
		if proto == "HTTP" || proto == "HTTPS" {
			setDefault(hc, "ignoreHttp1xx", false)
		}
		_, hasPort := hc["port"]
		if _, ok := hc["portIndex"]; !ok && !hasPort && proto != "COMMAND" {
			hc["portIndex"] = 0.0
		}
	}
	for _, r := range arr(app["readinessChecks"]) {
		rc := obj(r)
		setDefault(rc, "name", "readinessCheck")
		setDefault(rc, "protocol", "HTTP")
		setDefault(rc, "path", "/")
		setDefault(rc, "portName", "http-api")
		setDefault(rc, "intervalSeconds", 30.0)
		setDefault(rc, "timeoutSeconds", 10.0)
		setDefault(rc, "httpStatusCodesForReady", []any{200.0})
		setDefault(rc, "preserveLastResponse", false)
	}
	for _, f := range arr(app["fetch"]) {
		fo := obj(f)
		setDefault(fo, "extract", true)
		setDefault(fo, "executable", false)
		setDefault(fo, "cache", false)
	}
	for _, k := range omitEmptyKeys {
		if isEmpty(app[k]) {
			delete(app, k)
		}
	}
}

func prevServicePorts(prev map[string]any) []int {
	if prev == nil {
		return nil
	}
	var out []int
	if pds, ok := prev["portDefinitions"]; ok {
		for _, p := range arr(pds) {
			out = append(out, int(numOf(obj(p)["port"])))
		}
		return out
	}
	for _, p := range arr(obj(prev["container"])["portMappings"]) {
		out = append(out, int(numOf(obj(p)["servicePort"])))
	}
	return out
}

func prevAt(ps []int, i int) int {
	if i < len(ps) {
		return ps[i]
	}
	return 0
}
