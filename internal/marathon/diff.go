package marathon

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// Diff compares desired with actual, the app object Marathon returned, on
// the fields the operator owns only, and returns one human-readable line
// per difference ("instances: 0 -> 1"). An empty result means in sync.
//
// What it deliberately ignores: every field the operator does not send
// (humans may set acceptedResourceRoles, fetch, ...), Marathon's filled-in
// defaults (compared as if present: instances 1, hostPort 0, health check
// timings 300/60/20/3, upgradeStrategy 1/1), its normalisation (legacy
// docker.portMappings are read as container.portMappings, absent and empty
// collections are equal), assigned service ports when the spec asks for
// any, and label/env keys the operator never set (see OwnedLabelsLabel).
func Diff(desired *App, actual map[string]any) []string {
	d := differ{secret: map[string]bool{}}
	for _, k := range desired.SecretEnv {
		d.secret[k] = true
	}
	d.num("instances", num(actual["instances"], 1), float64(desired.Instances))
	d.num("cpus", num(actual["cpus"], 1), desired.CPUs)
	d.num("mem", num(actual["mem"], 128), desired.Mem)
	d.networks(desired.Networks, actual["networks"])
	if desired.Args != nil {
		d.args(desired.Args, list(actual["args"]))
	}
	if desired.Container != nil {
		d.container(desired.Container, obj(actual["container"]))
	}
	d.keyed("env", desired.Env, obj(actual["env"]), ownedKeys(actual, OwnedEnvLabel))
	labels := maps.Clone(desired.Labels)
	delete(labels, OwnedLabelsLabel) // bookkeeping: changes only with a real change
	delete(labels, OwnedEnvLabel)
	d.keyed("labels", labels, obj(actual["labels"]), ownedKeys(actual, OwnedLabelsLabel))
	d.healthChecks(desired.HealthChecks, list(actual["healthChecks"]))
	d.constraints(desired.Constraints, list(actual["constraints"]))
	if u := desired.UpgradeStrategy; u != nil {
		a := obj(actual["upgradeStrategy"])
		d.num("upgradeStrategy.minimumHealthCapacity", num(a["minimumHealthCapacity"], 1), u.MinimumHealthCapacity)
		d.num("upgradeStrategy.maximumOverCapacity", num(a["maximumOverCapacity"], 1), u.MaximumOverCapacity)
	}
	return d.lines
}

// UpdateBody is the PUT body that brings actual to desired: the owned
// top-level fields of desired (Marathon's default partialUpdate keeps every
// field not sent). labels and env are replaced wholesale by Marathon, so the
// keys a human added are carried over, and keys the operator set earlier
// but the spec dropped are left out.
func UpdateBody(desired *App, actual map[string]any) (map[string]any, error) {
	b, err := json.Marshal(desired)
	if err != nil {
		return nil, fmt.Errorf("encode app %s: %w", desired.ID, err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("decode app %s: %w", desired.ID, err)
	}
	body["labels"] = merge(obj(actual["labels"]), desired.Labels, ownedKeys(actual, OwnedLabelsLabel))
	body["env"] = merge(obj(actual["env"]), desired.Env, ownedKeys(actual, OwnedEnvLabel))
	return body, nil
}

func merge(actual map[string]any, desired map[string]string, owned []string) map[string]any {
	out := map[string]any{}
	for k, v := range actual {
		out[k] = v
	}
	for _, k := range owned {
		if _, ok := desired[k]; !ok {
			delete(out, k)
		}
	}
	for k, v := range desired {
		out[k] = v
	}
	return out
}

// ownedKeys reads the bookkeeping label that lists the keys the operator
// set on the app last time.
func ownedKeys(actual map[string]any, label string) []string {
	s, _ := obj(actual["labels"])[label].(string)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

type differ struct {
	lines  []string
	secret map[string]bool
}

func (d *differ) add(path, from, to string) {
	d.lines = append(d.lines, path+": "+from+" -> "+to)
}

func (d *differ) num(path string, actual, desired float64) {
	if math.Abs(actual-desired) > 1e-9 {
		d.add(path, fmtNum(actual), fmtNum(desired))
	}
}

func (d *differ) str(path string, actual any, desired string) {
	a, ok := actual.(string)
	if !ok || a != desired {
		d.add(path, fmtAny(actual), fmtStr(desired))
	}
}

func (d *differ) networks(desired []Network, actual any) {
	want := make([]string, 0, len(desired))
	for _, n := range desired {
		want = append(want, joinNonEmpty(n.Mode, n.Name))
	}
	var got []string
	for _, n := range list(actual) {
		m := obj(n)
		mode, _ := m["mode"].(string)
		if mode == "" {
			mode = "container"
		}
		name, _ := m["name"].(string)
		got = append(got, joinNonEmpty(mode, name))
	}
	if len(got) == 0 {
		got = []string{"host"} // Marathon's default
	}
	if !slices.Equal(got, want) {
		d.add("networks", strings.Join(got, ","), strings.Join(want, ","))
	}
}

func (d *differ) container(desired *Container, actual map[string]any) {
	if actual == nil {
		d.add("container", "<unset>", desired.Type+" "+desired.Docker.Image)
		return
	}
	typ, _ := actual["type"].(string)
	if typ == "" {
		typ = "DOCKER"
	}
	d.str("container.type", typ, desired.Type)
	docker := obj(actual["docker"])
	d.str("container.docker.image", docker["image"], desired.Docker.Image)
	pms := list(actual["portMappings"])
	if pms == nil {
		pms = list(docker["portMappings"]) // a pre-1.5 Marathon answers in the legacy place
	}
	if len(pms) != len(desired.PortMappings) {
		d.add("container.portMappings", strconv.Itoa(len(pms))+" entries", strconv.Itoa(len(desired.PortMappings))+" entries")
	}
	for i, want := range desired.PortMappings {
		p := fmt.Sprintf("container.portMappings[%d]", i)
		var got map[string]any
		if i < len(pms) {
			got = obj(pms[i])
		}
		d.num(p+".containerPort", num(got["containerPort"], 0), float64(want.ContainerPort))
		d.num(p+".hostPort", num(got["hostPort"], 0), float64(want.HostPort))
		if want.ServicePort != 0 { // 0 asks Marathon to assign one: any value is right
			d.num(p+".servicePort", num(got["servicePort"], 0), float64(want.ServicePort))
		}
		proto, _ := got["protocol"].(string)
		if proto == "" {
			proto = "tcp"
		}
		d.str(p+".protocol", proto, want.Protocol)
		if want.Name != "" {
			d.str(p+".name", got["name"], want.Name)
		}
		// The operator owns the VIP label only; other port labels are left alone.
		gl := obj(got["labels"])
		wantVIP, hasVIP := want.Labels[VIPLabel]
		gotVIP, gotHas := gl[VIPLabel]
		switch {
		case hasVIP:
			d.str(p+".labels."+VIPLabel, gotVIP, wantVIP)
		case gotHas:
			d.add(p+".labels."+VIPLabel, fmtAny(gotVIP), "removed")
		}
	}
	vols := map[string]map[string]any{}
	for _, v := range list(actual["volumes"]) {
		m := obj(v)
		if cp, ok := m["containerPath"].(string); ok {
			vols[cp] = m
		}
	}
	for _, want := range desired.Volumes {
		p := "container.volumes[" + want.ContainerPath + "]"
		got, ok := vols[want.ContainerPath]
		w := want.HostPath + ":" + want.Mode
		if !ok {
			d.add(p, "<unset>", w)
			continue
		}
		hp, _ := got["hostPath"].(string)
		mode, _ := got["mode"].(string)
		if g := hp + ":" + mode; g != w {
			d.add(p, g, w)
		}
	}
}

// keyed compares a string map on the keys desired names plus the keys the
// operator set before (owned), which must go when the spec dropped them.
func (d *differ) keyed(path string, desired map[string]string, actual map[string]any, owned []string) {
	keys := slices.Collect(maps.Keys(desired))
	for _, k := range owned {
		if _, ok := desired[k]; !ok && k != "" {
			if _, present := actual[k]; present {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		p := path + "." + k
		want, wantOK := desired[k]
		got, gotOK := actual[k]
		if gotOK {
			if s, ok := got.(string); ok && wantOK && s == want {
				continue
			}
		}
		// A key the spec no longer sets may still hold a secret (the HTTP
		// secret moved from env into config.yml): named, never shown.
		if path == "env" && (d.secret[k] || v1alpha1.SecretEnv(k)) {
			switch {
			case !gotOK:
				d.add(p, "<unset>", "<redacted>")
			case !wantOK:
				d.add(p, "<redacted>", "removed")
			default:
				d.lines = append(d.lines, p+": <redacted> changed")
			}
			continue
		}
		to := "removed"
		if wantOK {
			to = fmtStr(want)
		}
		d.add(p, fmtAny(got), to)
	}
}

func (d *differ) healthChecks(desired []HealthCheck, actual []any) {
	if len(actual) != len(desired) {
		d.add("healthChecks", strconv.Itoa(len(actual))+" entries", strconv.Itoa(len(desired))+" entries")
	}
	for i, want := range desired {
		if i >= len(actual) {
			break
		}
		got := obj(actual[i])
		p := fmt.Sprintf("healthChecks[%d]", i)
		proto, _ := got["protocol"].(string)
		if proto == "" {
			proto = "HTTP" // Marathon's default protocol
		}
		d.str(p+".protocol", proto, want.Protocol)
		if want.Path != "" {
			d.str(p+".path", got["path"], want.Path)
		}
		if _, fixed := got["port"]; fixed {
			d.add(p+".port", fmtAny(got["port"]), "<unset>")
		}
		d.num(p+".portIndex", num(got["portIndex"], 0), float64(want.PortIndex))
		d.num(p+".gracePeriodSeconds", num(got["gracePeriodSeconds"], 300), float64(want.GracePeriodSeconds))
		d.num(p+".intervalSeconds", num(got["intervalSeconds"], 60), float64(want.IntervalSeconds))
		d.num(p+".timeoutSeconds", num(got["timeoutSeconds"], 20), float64(want.TimeoutSeconds))
		d.num(p+".maxConsecutiveFailures", num(got["maxConsecutiveFailures"], 3), float64(want.MaxConsecutiveFailures))
	}
}

func (d *differ) constraints(desired [][]string, actual []any) {
	want := make([]string, 0, len(desired))
	for _, c := range desired {
		want = append(want, strings.Join(c, ":"))
	}
	got := make([]string, 0, len(actual))
	for _, c := range actual {
		var parts []string
		for _, p := range list(c) {
			parts = append(parts, fmt.Sprint(p))
		}
		got = append(got, strings.Join(parts, ":"))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		d.add("constraints", "["+strings.Join(got, " ")+"]", "["+strings.Join(want, " ")+"]")
	}
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func num(v any, def float64) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, err := n.Float64()
		if err == nil {
			return f
		}
	}
	return def
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func fmtStr(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case nil:
		return "<unset>"
	case string:
		return fmtStr(x)
	case float64:
		return fmtNum(x)
	case map[string]any:
		if s, ok := x["secret"].(string); ok {
			return "secret:" + s
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func joinNonEmpty(a, b string) string {
	if b == "" {
		return a
	}
	return a + ":" + b
}

// args compares the command's arguments (sent only when the operator sets
// them: the registry reading its config file).
func (d *differ) args(desired []string, actual []any) {
	got := make([]string, 0, len(actual))
	for _, a := range actual {
		s, _ := a.(string)
		got = append(got, s)
	}
	if !slices.Equal(got, desired) {
		from := "<unset>"
		if len(got) > 0 {
			from = fmtStr(strings.Join(got, " "))
		}
		d.add("args", from, fmtStr(strings.Join(desired, " ")))
	}
}
