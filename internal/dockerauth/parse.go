package dockerauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// ErrUnreadable marks an existing credentials file that cannot be parsed.
// It must be repaired or removed by hand: it is never overwritten.
var ErrUnreadable = errors.New("existing docker config cannot be read")

// parse splits a config.json into its top-level keys and its auths
// entries. Its errors describe where and what is wrong but never quote the
// file: it holds secrets.
func parse(b []byte) (top, auths map[string]json.RawMessage, err error) {
	top, auths = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	if len(bytes.TrimSpace(b)) == 0 {
		return top, auths, nil
	}
	if err := object(b, "the file"); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, nil, fmt.Errorf("%w: the file does not decode as a JSON object", ErrUnreadable)
	}
	raw, ok := top["auths"]
	if !ok {
		return top, auths, nil
	}
	if err := object(raw, `"auths"`); err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, &auths); err != nil {
		return nil, nil, fmt.Errorf(`%w: "auths" does not decode as a JSON object`, ErrUnreadable)
	}
	return top, auths, nil
}

// object checks that b is valid JSON and an object. Only the offset of a
// syntax error is reported: encoding/json's message quotes the offending
// character, which may belong to a password.
func object(b []byte, what string) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("%w: %s is not valid JSON (syntax error near byte %d); repair or remove it by hand",
				ErrUnreadable, what, syn.Offset)
		}
		return fmt.Errorf("%w: %s is not valid JSON; repair or remove it by hand", ErrUnreadable, what)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%w: %s is a JSON %s, want an object; repair or remove it by hand", ErrUnreadable, what, kind(v))
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		return "number"
	}
	return "value"
}

// Lookup returns the credentials config.json holds for host, from "auth" or
// from "username" and "password", so the caller can tell which user (and
// so which pull password generation) an agent carries. ok is false when
// host has no entry.
func Lookup(configJSON []byte, host string) (e Entry, ok bool, err error) {
	_, auths, err := parse(configJSON)
	if err != nil {
		return Entry{}, false, err
	}
	raw, ok := auths[host]
	if !ok {
		return Entry{}, false, nil
	}
	var fields struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Entry{}, false, fmt.Errorf("%w: auths entry for %s is not an object of strings", ErrUnreadable, host)
	}
	if fields.Auth == "" {
		if fields.Username == "" {
			return Entry{}, false, fmt.Errorf("%w: auths entry for %s has neither auth nor username", ErrUnreadable, host)
		}
		return Entry{Username: fields.Username, Password: secret.Value(fields.Password)}, true, nil
	}
	dec, err := base64.StdEncoding.DecodeString(fields.Auth)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%w: auths entry for %s: auth is not base64", ErrUnreadable, host)
	}
	user, pass, found := strings.Cut(string(dec), ":")
	if !found {
		return Entry{}, false, fmt.Errorf("%w: auths entry for %s: auth is not base64 of user:password", ErrUnreadable, host)
	}
	return Entry{Username: user, Password: secret.Value(pass)}, true, nil
}
