package v1alpha1

import (
	"maps"
	"regexp"
)

// RedactedText replaces a secret wherever the spec is shown.
const RedactedText = "redacted"

// secretEnvRE matches env names whose values are secrets by convention
// (REGISTRY_STORAGE_S3_SECRETKEY, ..._PASSWORD, ..._TOKEN).
var secretEnvRE = regexp.MustCompile(`(?i)(secret|passw|token|credential|private|accesskey|apikey)`)

// Redact returns a copy of r that is safe to show on the status page, in
// `plan` and in logs: URL user info and secret-looking env values are
// replaced. Validation already refuses credentials in URLs; this keeps a
// spec that bypassed it (a test, a future field) from leaking one. The
// spec otherwise only names secret files, whose contents are never read
// for display.
func (r *Registry) Redact() *Registry {
	c := *r
	s := &c.Spec
	if m := s.Marathon; m != nil {
		mc := *m
		mc.URLs = make([]string, len(m.URLs))
		for i, u := range m.URLs {
			mc.URLs[i] = redactURL(u)
		}
		s.Marathon = &mc
	}
	if n := s.Nodes; n != nil && n.Mesos != nil {
		nc := *n
		nc.Mesos = &MesosSpec{URL: redactURL(n.Mesos.URL)}
		s.Nodes = &nc
	}
	if a := s.App; a != nil {
		ac := *a
		ac.Env = redactEnv(a.Env)
		s.App = &ac
	}
	if u := s.UI; u != nil {
		uc := *u
		uc.Env = redactEnv(u.Env)
		s.UI = &uc
	}
	if m := s.Mirror; m != nil {
		mc := *m
		mc.RemoteURL = redactURL(m.RemoteURL)
		s.Mirror = &mc
	}
	return &c
}

// SecretEnv reports an env name whose value is a secret by convention; its
// value is redacted wherever the spec or an app difference is shown.
func SecretEnv(name string) bool { return secretEnvRE.MatchString(name) }

func redactEnv(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := maps.Clone(env)
	for k := range out {
		if SecretEnv(k) {
			out[k] = RedactedText
		}
	}
	return out
}
