package controllers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// daemonJSON is /etc/docker/daemon.json as an ordered list of top-level
// members, so a merge keeps every other key, its value and the key order;
// only the layout is normalised (two-space indent).
type daemonJSON struct {
	keys   []string
	values map[string]json.RawMessage
}

const insecureKey = "insecure-registries"

// parseDaemonJSON reads the file; a blank file is an empty object, as
// dockerd treats it. Anything else that is not one JSON object without
// duplicate keys is an error, and the caller must leave the file alone.
func parseDaemonJSON(b []byte) (*daemonJSON, error) {
	d := &daemonJSON{values: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(b)) == 0 {
		return d, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok != json.Delim('{') {
		return nil, errors.New("the top level is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // inside an object, a member starts with its name
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("value of %q: %w", key, err)
		}
		if _, dup := d.values[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		d.keys = append(d.keys, key)
		d.values[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the top-level object")
	}
	return d, nil
}

// addInsecure adds names to insecure-registries, returning those added.
func (d *daemonJSON) addInsecure(names []string) ([]string, error) {
	return d.addTo(insecureKey, names)
}

// removeInsecure takes names out of insecure-registries, returning those
// removed; every other entry, and the key itself, stay.
func (d *daemonJSON) removeInsecure(names []string) ([]string, error) {
	return d.removeFrom(insecureKey, names)
}

// list reads the list of strings under key (nil when absent).
func (d *daemonJSON) list(key string) ([]string, bool, error) {
	raw, ok := d.values[key]
	if !ok {
		return nil, false, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || list == nil && string(bytes.TrimSpace(raw)) != "null" {
		return nil, true, fmt.Errorf("%q is not a list of strings", key)
	}
	return list, true, nil
}

// addTo adds names to the list under key, returning those added.
func (d *daemonJSON) addTo(key string, names []string) ([]string, error) {
	list, ok, err := d.list(key)
	if err != nil {
		return nil, err
	}
	var added []string
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
			added = append(added, n)
		}
	}
	if len(added) == 0 {
		return nil, nil // an absent key stays absent
	}
	if !ok {
		d.keys = append(d.keys, key)
	}
	raw, _ := json.Marshal(list)
	d.values[key] = raw
	return added, nil
}

// removeFrom takes names out of the list under key, returning those
// removed; every other entry, and the key itself, stay.
func (d *daemonJSON) removeFrom(key string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	list, ok, err := d.list(key)
	if err != nil || !ok {
		return nil, err
	}
	var removed []string
	kept := make([]string, 0, len(list))
	for _, n := range list {
		if slices.Contains(names, n) {
			removed = append(removed, n)
			continue
		}
		kept = append(kept, n)
	}
	if len(removed) > 0 {
		raw, _ := json.Marshal(kept)
		d.values[key] = raw
	}
	return removed, nil
}

func (d *daemonJSON) bytes() []byte {
	var b strings.Builder
	b.WriteString("{")
	for i, k := range d.keys {
		if i > 0 {
			b.WriteString(",")
		}
		name, _ := json.Marshal(k)
		var v bytes.Buffer
		if err := json.Indent(&v, d.values[k], "  ", "  "); err != nil {
			v.Reset()
			v.Write(d.values[k]) // already valid JSON: Indent cannot fail
		}
		fmt.Fprintf(&b, "\n  %s: %s", name, bytes.TrimSpace(v.Bytes()))
	}
	if len(d.keys) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}
