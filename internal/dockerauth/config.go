package dockerauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// Entry is one registry's credentials.
type Entry struct {
	Username string
	Password secret.Value
}

// auth is the value Docker keeps: base64 of "user:password".
func (e Entry) auth() string {
	return base64.StdEncoding.EncodeToString([]byte(e.Username + ":" + e.Password.Reveal()))
}

func (e Entry) check(host string) error {
	switch {
	case e.Username == "":
		return fmt.Errorf("credentials for %s: user name is empty", host)
	case strings.ContainsRune(e.Username, ':'):
		return fmt.Errorf("credentials for %s: user name %q contains ':', which basic auth cannot carry", host, e.Username)
	case e.Password.Empty():
		return fmt.Errorf("credentials for %s: password of %q is empty", host, e.Username)
	}
	return nil
}

// CheckHost reports whether host can be an auths key the operator owns:
// host or host:port, as clients name the registry in image references.
func CheckHost(host string) error {
	if host == "" || strings.ContainsAny(host, "/@") ||
		strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("registry host %q: want host or host:port, as in image references", host)
	}
	return nil
}

// Config returns a config.json holding e for every host (the registry
// address and each other name clients use for it).
func Config(e Entry, hosts ...string) ([]byte, error) {
	if len(hosts) == 0 {
		return nil, errors.New("docker config: no registry host given")
	}
	owned := make(map[string]Entry, len(hosts))
	for _, h := range hosts {
		owned[h] = e
	}
	return Merge(nil, owned)
}

// Merge returns existing with the owned hosts' entries under "auths"
// replaced by owned. Every other auths entry and every other top-level key
// (credHelpers, HttpHeaders, ...) is kept as it is. An empty or blank
// existing file counts as none. An existing file that is not a JSON object
// (or whose "auths" is not one) is refused with an error and nothing is
// returned: the caller must not replace what cannot be read. Merging the
// output again with the same owned entries returns the same bytes.
func Merge(existing []byte, owned map[string]Entry) ([]byte, error) {
	top, auths, err := parse(existing)
	if err != nil {
		return nil, err
	}
	for _, host := range slices.Sorted(maps.Keys(owned)) {
		if err := CheckHost(host); err != nil {
			return nil, err
		}
		e := owned[host]
		if err := e.check(host); err != nil {
			return nil, err
		}
		raw, err := json.Marshal(authEntry{Auth: e.auth()})
		if err != nil {
			return nil, fmt.Errorf("encode credentials for %s: %w", host, err)
		}
		auths[host] = raw
	}
	rawAuths, err := encode(auths, false)
	if err != nil {
		return nil, fmt.Errorf("encode docker config auths: %w", err)
	}
	top["auths"] = rawAuths
	out, err := encode(top, true)
	if err != nil {
		return nil, fmt.Errorf("encode docker config: %w", err)
	}
	return out, nil
}

type authEntry struct {
	Auth string `json:"auth"`
}

// encode writes m with sorted keys, tab-indented like the docker CLI
// writes config.json, without HTML escaping (kept entries stay as they
// were). Only the outermost call indents: Indent re-indents everything.
func encode(m map[string]json.RawMessage, indent bool) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "\t")
	}
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if !indent {
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
	}
	return buf.Bytes(), nil
}
