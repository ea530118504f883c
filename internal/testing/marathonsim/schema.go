package marathonsim

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AppDefinition.json is Marathon's own JSON schema for apps (tag v1.7.236).
// The emulator checks every app body against it; the keywords it uses are
// the small set implemented below.
//
//go:embed schema/AppDefinition.json
var appSchemaJSON []byte

// AppSchema returns the embedded schema-v1.7 AppDefinition.json.
func AppSchema() []byte { return append([]byte(nil), appSchemaJSON...) }

// Fields Marathon 1.8+ accepts that the 1.7 schema predates (RAML app.raml).
var newerAppFields = map[string]any{
	"tty":            map[string]any{"type": "boolean"},
	"role":           map[string]any{"type": "string", "minLength": json.Number("1")},
	"check":          map[string]any{"type": "object"},
	"resourceLimits": map[string]any{"type": "object"},
}

// unknownProperty is the message for a field the schema does not know.
// Marathon itself ignores such fields; the emulator refuses them unless
// Options.IgnoreUnknownFields is set, so typos in what the operator sends
// surface in tests.
const unknownProperty = "is not a known property"

// schemaViolation is one failed keyword at a path ("/a/b(0)/c", play-json style).
type schemaViolation struct {
	path    string
	msg     string
	typeErr bool // a JSON type error (play-json's "error.expected.*")
}

type schema struct {
	root  map[string]any
	regex sync.Map // pattern -> *regexp.Regexp
}

var (
	appSchemaOnce sync.Once
	appSchemaVal  *schema
	appSchemaErr  error
)

func loadAppSchema() (*schema, error) {
	appSchemaOnce.Do(func() {
		root, err := decodeJSON(appSchemaJSON)
		if err != nil {
			appSchemaErr = fmt.Errorf("embedded AppDefinition.json: %w", err)
			return
		}
		m := root.(map[string]any)
		props := m["properties"].(map[string]any)
		for k, v := range newerAppFields {
			props[k] = v
		}
		appSchemaVal = &schema{root: m}
	})
	return appSchemaVal, appSchemaErr
}

// validateApp checks an app body (nulls already stripped) against the schema.
func validateAppSchema(body map[string]any) ([]schemaViolation, error) {
	s, err := loadAppSchema()
	if err != nil {
		return nil, err
	}
	var out []schemaViolation
	s.check(s.root, body, "", &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func (s *schema) resolve(node map[string]any) map[string]any {
	for i := 0; i < 8; i++ {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		cur := any(s.root)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		node = cur.(map[string]any)
	}
	return node
}

func (s *schema) re(p string) *regexp.Regexp {
	if r, ok := s.regex.Load(p); ok {
		return r.(*regexp.Regexp)
	}
	r := regexp.MustCompile(p)
	s.regex.Store(p, r)
	return r
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if isIntLiteral(string(x)) {
			return "integer"
		}
		return "number"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func isIntLiteral(s string) bool { return !strings.ContainsAny(s, ".eE") }

func typeMatches(want, got string) bool {
	return want == got || (want == "number" && got == "integer")
}

func expectedToken(want string) string {
	switch want {
	case "string":
		return "error.expected.jsstring"
	case "integer", "number":
		return "error.expected.jsnumber"
	case "array":
		return "error.expected.jsarray"
	case "object":
		return "error.expected.jsobject"
	case "boolean":
		return "error.expected.jsboolean"
	}
	return "error.expected." + want
}

func numOf(v any) float64 {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (s *schema) check(node map[string]any, v any, path string, out *[]schemaViolation) {
	node = s.resolve(node)
	p := path
	if p == "" {
		p = "/"
	}
	add := func(msg string, typeErr bool) {
		*out = append(*out, schemaViolation{path: p, msg: msg, typeErr: typeErr})
	}
	got := jsonType(v)
	if t, ok := node["type"].(string); ok && !typeMatches(t, got) {
		add(expectedToken(t), true)
		return
	}
	if e, ok := node["enum"].([]any); ok {
		found := false
		var names []string
		for _, x := range e {
			names = append(names, fmt.Sprint(x))
			if x == v {
				found = true
			}
		}
		if !found {
			add(fmt.Sprintf("is not one of (%s)", strings.Join(names, ",")), false)
		}
	}
	if n, ok := node["not"].(map[string]any); ok {
		var sub []schemaViolation
		s.check(n, v, path, &sub)
		if len(sub) == 0 {
			add("AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.", false)
		}
	}
	if all, ok := node["allOf"].([]any); ok {
		for _, sub := range all {
			s.check(sub.(map[string]any), v, path, out)
		}
	}
	if one, ok := node["oneOf"].([]any); ok {
		s.checkOneOf(one, v, path, out)
	}
	switch x := v.(type) {
	case string:
		if m, ok := node["minLength"]; ok && len([]rune(x)) < int(numOf(m)) {
			if numOf(m) == 1 {
				add("must not be empty", false)
			} else {
				add("length is less than "+fmtNum(numOf(m)), false)
			}
		}
		if m, ok := node["maxLength"]; ok && len([]rune(x)) > int(numOf(m)) {
			add("length is greater than "+fmtNum(numOf(m)), false)
		}
		if pat, ok := node["pattern"].(string); ok && !s.re(pat).MatchString(x) {
			add(fmt.Sprintf("must fully match regular expression '%s'", pat), false)
		}
		if node["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				add("is not a valid date-time", false)
			}
		}
	case json.Number, float64:
		f := numOf(x)
		if m, ok := node["minimum"]; ok && f < numOf(m) {
			add("is less than "+fmtNum(numOf(m)), false)
		}
		if m, ok := node["maximum"]; ok && f > numOf(m) {
			add("is greater than "+fmtNum(numOf(m)), false)
		}
	case []any:
		s.checkArray(node, x, path, out)
	case map[string]any:
		s.checkObject(node, x, path, out)
	}
}

func (s *schema) checkOneOf(branches []any, v any, path string, out *[]schemaViolation) {
	var best []schemaViolation
	passed := 0
	for i, b := range branches {
		var sub []schemaViolation
		s.check(b.(map[string]any), v, path, &sub)
		if len(sub) == 0 {
			passed++
			continue
		}
		// Prefer the branch whose type matched (fewest type errors).
		if i == 0 || countType(sub) < countType(best) || (countType(sub) == countType(best) && len(sub) < len(best)) {
			best = sub
		}
	}
	if passed == 0 {
		*out = append(*out, best...)
	}
}

func countType(vs []schemaViolation) int {
	n := 0
	for _, v := range vs {
		if v.typeErr {
			n++
		}
	}
	return n
}

func (s *schema) checkArray(node map[string]any, x []any, path string, out *[]schemaViolation) {
	p := path
	if p == "" {
		p = "/"
	}
	if m, ok := node["minItems"]; ok && len(x) < int(numOf(m)) {
		*out = append(*out, schemaViolation{path: p, msg: "must have at least " + fmtNum(numOf(m)) + " elements"})
	}
	switch items := node["items"].(type) {
	case map[string]any:
		for i, el := range x {
			s.check(items, el, fmt.Sprintf("%s(%d)", path, i), out)
		}
	case []any:
		for i, el := range x {
			if i < len(items) {
				s.check(items[i].(map[string]any), el, fmt.Sprintf("%s(%d)", path, i), out)
			} else if node["additionalItems"] == false {
				*out = append(*out, schemaViolation{path: fmt.Sprintf("%s(%d)", path, i), msg: "is not allowed (too many elements)"})
			}
		}
	}
}

func (s *schema) checkObject(node map[string]any, x map[string]any, path string, out *[]schemaViolation) {
	if req, ok := node["required"].([]any); ok {
		for _, r := range req {
			if _, ok := x[r.(string)]; !ok {
				*out = append(*out, schemaViolation{path: path + "/" + r.(string), msg: "error.path.missing", typeErr: true})
			}
		}
	}
	props, _ := node["properties"].(map[string]any)
	pprops, _ := node["patternProperties"].(map[string]any)
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := x[k]
		matched := false
		if ps, ok := props[k].(map[string]any); ok {
			matched = true
			s.check(ps, val, path+"/"+k, out)
		}
		for pat, ps := range pprops {
			if s.re(pat).MatchString(k) {
				matched = true
				s.check(ps.(map[string]any), val, path+"/"+k, out)
			}
		}
		if matched {
			continue
		}
		switch ap := node["additionalProperties"].(type) {
		case bool:
			if !ap {
				*out = append(*out, schemaViolation{path: path + "/" + k, msg: unknownProperty})
			}
		case map[string]any:
			s.check(ap, val, path+"/"+k, out)
		}
	}
}
