package dockerauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/registry-operator/registry-operator/internal/secret"
)

const pullPassword = "pull-P4ss&<word>"

var pull = Entry{Username: "agents-3", Password: pullPassword}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestConfig(t *testing.T) {
	got, err := Config(pull, "registry.example:5000", "10.0.0.5:5000")
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n\t\"auths\": {\n" +
		"\t\t\"10.0.0.5:5000\": {\n\t\t\t\"auth\": \"" + b64("agents-3:"+pullPassword) + "\"\n\t\t},\n" +
		"\t\t\"registry.example:5000\": {\n\t\t\t\"auth\": \"" + b64("agents-3:"+pullPassword) + "\"\n\t\t}\n" +
		"\t}\n}\n"
	if string(got) != want {
		t.Errorf("Config =\n%s\nwant\n%s", got, want)
	}
	if _, err := Config(pull); err == nil {
		t.Error("no hosts accepted")
	}
}

// foreign is an agent's file with entries and settings the operator does
// not own, written the way people write them (odd spacing, HTML characters,
// a number literal that a float round trip would change).
const foreign = `{
  "auths": {
    "other.example:443": {"auth": "` + "b3RoZXI6cGFzcw==" + `", "email": "a&b@example.com"},
    "registry.example:5000": {"auth": "` + "b2xkOm9sZA==" + `", "identitytoken": "tok<en>"},
    "https://index.docker.io/v1/": {"auth": "aHViOmh1Yg=="}
  },
  "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
  "HttpHeaders": {"User-Agent": "Docker-Client/19.03 (linux) <x&y>"},
  "detachKeys": "ctrl-e,e",
  "retries": 1.50
}`

func TestMergeKeepsWhatItDoesNotOwn(t *testing.T) {
	out, err := Merge([]byte(foreign), map[string]Entry{"registry.example:5000": pull, "10.0.0.5:5000": pull})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Auths       map[string]map[string]string
		CredHelpers map[string]string `json:"credHelpers"`
		HTTPHeaders map[string]string `json:"HttpHeaders"`
		DetachKeys  string            `json:"detachKeys"`
		Retries     json.Number       `json:"retries"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
	if got := doc.Auths["other.example:443"]; got["auth"] != "b3RoZXI6cGFzcw==" || got["email"] != "a&b@example.com" {
		t.Errorf("foreign entry changed: %v", got)
	}
	if doc.Auths["https://index.docker.io/v1/"]["auth"] != "aHViOmh1Yg==" {
		t.Errorf("Docker Hub entry lost")
	}
	owned := doc.Auths["registry.example:5000"]
	if len(owned) != 1 || owned["auth"] != b64("agents-3:"+pullPassword) {
		t.Errorf("owned entry = %v, want only the new auth (the old identitytoken dropped)", owned)
	}
	if doc.Auths["10.0.0.5:5000"]["auth"] != b64("agents-3:"+pullPassword) {
		t.Error("second owned host missing")
	}
	if doc.CredHelpers["123.dkr.ecr.us-east-1.amazonaws.com"] != "ecr-login" || doc.HTTPHeaders["User-Agent"] != "Docker-Client/19.03 (linux) <x&y>" ||
		doc.DetachKeys != "ctrl-e,e" || doc.Retries != "1.50" {
		t.Errorf("top-level keys changed: %+v", doc)
	}
	for _, s := range []string{`"a&b@example.com"`, `(linux) <x&y>"`, `1.50`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("%s not kept literally:\n%s", s, out)
		}
	}
}

func TestMergeIsStable(t *testing.T) {
	owned := map[string]Entry{"registry.example:5000": pull, "10.0.0.5:5000": pull, "r.internal:5000": pull}
	first, err := Merge([]byte(foreign), owned)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Merge(first, owned)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, first) {
			t.Fatalf("re-merging its own output changed it:\n%s\nvs\n%s", first, again)
		}
		fresh, _ := Merge([]byte(foreign), owned)
		if !bytes.Equal(fresh, first) {
			t.Fatal("two merges of the same input differ")
		}
	}
	next, err := Merge(first, map[string]Entry{"registry.example:5000": {Username: "agents-4", Password: "p4"}})
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := Lookup(next, "registry.example:5000")
	if err != nil || !ok || e.Username != "agents-4" || e.Password != "p4" {
		t.Errorf("after rotation Lookup = %v %v %v", e.Username, ok, err)
	}
	if e, _, _ := Lookup(next, "10.0.0.5:5000"); e.Username != "agents-3" {
		t.Error("an entry not named in owned was changed")
	}
}

func TestMergeEmptyExisting(t *testing.T) {
	want, _ := Config(pull, "r:5000")
	for _, in := range []string{"", " \n\t", "{}", `{"auths": {}}`} {
		got, err := Merge([]byte(in), map[string]Entry{"r:5000": pull})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%q: got\n%s\nwant\n%s", in, got, want)
		}
	}
}

// TestMergeRefusesUnreadable: a file that cannot be parsed is refused with
// an error that says where, without a byte of its content.
func TestMergeRefusesUnreadable(t *testing.T) {
	const secretBits = "T0pS3cr3t"
	cases := map[string]string{
		"truncated":        `{"auths": {"r:5000": {"auth": "` + secretBits,
		"bare word":        `{"auths": {"r:5000": {"auth": ` + secretBits + `}}}`,
		"trailing garbage": `{"auths": {}} ` + secretBits,
		"array":            `["` + secretBits + `"]`,
		"null":             `null`,
		"string":           `"` + secretBits + `"`,
		"auths array":      `{"auths": ["` + secretBits + `"]}`,
		"auths string":     `{"auths": "` + secretBits + `"}`,
		"auths null":       `{"auths": null}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := Merge([]byte(in), map[string]Entry{"r:5000": pull})
			if err == nil || out != nil {
				t.Fatalf("merged into %q: %s", in, out)
			}
			if !errors.Is(err, ErrUnreadable) {
				t.Errorf("error %v does not wrap ErrUnreadable", err)
			}
			msg := err.Error()
			for _, leak := range []string{secretBits, "T0", "'T'", "character", pullPassword} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q shows content (%q)", msg, leak)
				}
			}
		})
	}
}

func TestMergeRefusesBadOwned(t *testing.T) {
	cases := map[string]map[string]Entry{
		"colon in user": {"r:5000": {Username: "a:b", Password: "pw-secret"}},
		"empty user":    {"r:5000": {Password: "pw-secret"}},
		"empty pass":    {"r:5000": {Username: "agents-1"}},
		"empty host":    {"": pull},
		"url host":      {"https://r:5000/v2": pull},
		"space host":    {"r :5000": pull},
	}
	for name, owned := range cases {
		out, err := Merge(nil, owned)
		if err == nil || out != nil {
			t.Errorf("%s: merged", name)
			continue
		}
		if strings.Contains(err.Error(), "pw-secret") || strings.Contains(err.Error(), pullPassword) {
			t.Errorf("%s: error %q shows the password", name, err)
		}
	}
}

func TestLookup(t *testing.T) {
	in := `{"auths": {
		"a:5000": {"auth": "` + b64("agents-7:pw:with:colons") + `"},
		"b:5000": {"username": "ci", "password": "ci-pw"},
		"c:5000": {"auth": "not base64!"},
		"d:5000": {"auth": "` + b64("no-colon") + `"},
		"e:5000": {"email": "x@example.com"},
		"f:5000": {"auth": 5}
	}}`
	if e, ok, err := Lookup([]byte(in), "a:5000"); err != nil || !ok || e.Username != "agents-7" || e.Password != "pw:with:colons" {
		t.Errorf("a: %v %v %v", e.Username, ok, err)
	}
	if e, ok, err := Lookup([]byte(in), "b:5000"); err != nil || !ok || e.Username != "ci" || e.Password != "ci-pw" {
		t.Errorf("b: %v %v %v", e.Username, ok, err)
	}
	if _, ok, err := Lookup([]byte(in), "z:5000"); ok || err != nil {
		t.Errorf("missing host: %v %v", ok, err)
	}
	for _, host := range []string{"c:5000", "d:5000", "e:5000", "f:5000"} {
		_, ok, err := Lookup([]byte(in), host)
		if ok || !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s: %v %v, want ErrUnreadable", host, ok, err)
			continue
		}
		if strings.Contains(err.Error(), "no-colon") || strings.Contains(err.Error(), "base64!") {
			t.Errorf("%s: error %q shows content", host, err)
		}
	}
	if _, _, err := Lookup([]byte("{"), "a:5000"); !errors.Is(err, ErrUnreadable) {
		t.Errorf("broken file: %v", err)
	}
	var _ secret.Value = pull.Password
}
