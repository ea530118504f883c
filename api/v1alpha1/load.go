package v1alpha1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// MaxConfigBytes bounds a config file; a spec is a few KiB.
const MaxConfigBytes = 1 << 20

// Load reads, strictly decodes, defaults and validates a config file. On
// error the returned error is a FieldErrors (or wraps the I/O error) and
// names every problem at once.
func Load(path string) (*Registry, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// ReadFile reads a config file of at most MaxConfigBytes. Anything but a
// regular file is refused before a byte is read: a FIFO would block until
// some writer appears, a device such as /dev/zero never ends, and a
// directory is a mistyped path. The open is non-blocking so that a FIFO
// swapped in after the first check cannot hang it either.
func ReadFile(path string) ([]byte, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	} else if err := regular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("config %s is larger than %d bytes", path, MaxConfigBytes)
	}
	return data, nil
}

func regular(path string, fi os.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	what := "special file"
	switch {
	case m.IsDir():
		what = "directory"
	case m&os.ModeNamedPipe != 0:
		what = "named pipe (FIFO)"
	case m&os.ModeDevice != 0:
		what = "device"
	case m&os.ModeSocket != 0:
		what = "socket"
	}
	return fmt.Errorf("config %s is a %s, not a regular file: --config must name the YAML file itself", path, what)
}

// Parse is Load without the file: decode, default, validate.
func Parse(data []byte) (*Registry, error) {
	r, err := Decode(data)
	if err != nil {
		return nil, err
	}
	Default(r)
	if errs := Validate(r); len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// Decode strictly decodes one YAML document. Unknown fields and type errors
// are reported with their field path (spec.nodes.ssh.usr) and line.
func Decode(data []byte) (*Registry, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, FieldErrors{{Path: "(file)", Reason: "is empty; expected a Registry document"}}
		}
		return nil, FieldErrors{{Path: "(file)", Reason: "is not valid YAML: " + err.Error()}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, FieldErrors{{Path: "(file)", Reason: "holds more than one YAML document; keep one Registry per file"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, FieldErrors{{Path: "(file)", Reason: "must be a YAML mapping with apiVersion, kind and spec"}}
	}
	lines := map[int]string{}
	var errs FieldErrors
	walk(root, reflect.TypeOf(Registry{}), "", lines, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	var r Registry
	if err := root.Decode(&r); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, typeErrors(te, lines)
		}
		return nil, FieldErrors{{Path: "(file)", Reason: err.Error()}}
	}
	return &r, nil
}

// walk checks every mapping key against the struct it decodes into, so an
// unknown or misspelled field is reported with its full path, and refuses
// an explicit 0 that defaulting would silently replace. It also
// records which path starts on which line, to give type errors a path.
func walk(n *yaml.Node, t reflect.Type, path string, lines map[int]string, errs *FieldErrors) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := lines[n.Line]; !ok {
			lines[n.Line] = path
		}
	}
	if explicitZero(n, t, path) {
		*errs = append(*errs, FieldError{Path: path, Line: n.Line, Reason: zeroReason})
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(Duration{}):
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[k.Line] = p
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, FieldError{Path: p, Line: k.Line, Reason: unknownReason(k.Value, fields)})
				continue
			}
			walk(v, ft, p, lines, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			walk(c, t.Elem(), path+"["+strconv.Itoa(i)+"]", lines, errs)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lines, errs)
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// yamlFields maps yaml names to field types, following ",inline" embeds.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func unknownReason(k string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", max(3, len(k)/3+1)
	for _, n := range names {
		if d := distance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown field (did you mean %q?)", best)
	}
	return "unknown field; known fields here: " + strings.Join(names, ", ")
}

// distance is the Levenshtein distance, for "did you mean" hints.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func typeErrors(te *yaml.TypeError, lines map[int]string) FieldErrors {
	var out FieldErrors
	for _, msg := range te.Errors {
		fe := FieldError{Path: "(file)", Reason: msg}
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			fe.Line = n
			fe.Reason = "wrong type: " + m[2]
			if p, ok := lines[n]; ok {
				fe.Path = p
			}
		}
		out = append(out, fe)
	}
	return out
}

// FieldError is one problem at one field path.
type FieldError struct {
	Path   string
	Line   int
	Reason string
}

func (e FieldError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %s (line %d)", e.Path, e.Reason, e.Line)
	}
	return e.Path + ": " + e.Reason
}

// FieldErrors is every problem found in a config, in file order.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return strings.Join(parts, "\n")
}
