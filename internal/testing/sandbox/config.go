package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// TemplatePath is config/sandbox.yaml of the module the working directory
// is in.
func TemplatePath() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "sandbox.yaml"), nil
}

// Render fills the ${NAME} placeholders of a config template; comment
// lines are left as they are. A placeholder without a value is an error,
// so a template and its users cannot drift apart silently.
func Render(template []byte, values map[string]string) ([]byte, error) {
	var missing []string
	lines := strings.SplitAfter(string(template), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		lines[i] = os.Expand(l, func(k string) string {
			v, ok := values[k]
			if !ok {
				missing = append(missing, k)
			}
			return v
		})
	}
	out := strings.Join(lines, "")
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("sandbox: the config template uses ${%s}, which the sandbox does not provide", strings.Join(missing, "}, ${"))
	}
	return []byte(out), nil
}

// TemplateValues are the values config/sandbox.yaml's placeholders take
// in this sandbox.
func (s *Sandbox) TemplateValues() map[string]string {
	ip := s.Fleet.Host(0).Address
	return map[string]string{
		"MARATHON_URL":     s.MarathonURL,
		"MESOS_URL":        s.MarathonURL,
		"SSH_PRIVATE_KEY":  s.Fleet.PrivateKeyPath,
		"SSH_KNOWN_HOSTS":  s.Fleet.KnownHostsPath,
		"REGISTRY_IP":      ip,
		"REGISTRY_IP_RE":   regexp.QuoteMeta(ip),
		"STATE_DIR":        s.StateDir(),
		"INTERVAL":         s.opts.Interval.String(),
		"CI_PASSWORD_FILE": s.CIPasswordFile(),
	}
}

// StateDir is tls.stateDir: the CA and the certificates.
func (s *Sandbox) StateDir() string { return filepath.Join(s.Dir, "state") }

// ConfigPath is the config file the operator runs with and watches.
func (s *Sandbox) ConfigPath() string { return filepath.Join(s.Dir, "config.yaml") }

// Interval is reconcile.interval as the sandbox was started with.
func (s *Sandbox) Interval() time.Duration { return s.opts.Interval }

func (s *Sandbox) writeInitialConfig() error {
	path := s.opts.Template
	if path == "" {
		var err error
		if path, err = TemplatePath(); err != nil {
			return err
		}
	}
	tmpl, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("sandbox: read the config template: %w", err)
	}
	out, err := Render(tmpl, s.TemplateValues())
	if err != nil {
		return fmt.Errorf("%w (template %s)", err, path)
	}
	if s.opts.Edit != nil {
		if out, err = s.opts.Edit(out); err != nil {
			return fmt.Errorf("sandbox: Options.Edit: %w", err)
		}
	}
	if s.opts.Auth {
		if out, err = editYAML(out, func(r *v1alpha1.Registry) { EnableAuth(r, s.CIPasswordFile(), 0) }); err != nil {
			return err
		}
	}
	r, err := v1alpha1.Parse(out)
	if err != nil {
		return fmt.Errorf("sandbox: the generated config %s is not valid: %w", s.ConfigPath(), err)
	}
	if err := checkAgentPaths(&r.Spec); err != nil {
		return err
	}
	if err := s.writeCIPassword(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.StateDir(), 0o700); err != nil {
		return err
	}
	return s.WriteConfig(out)
}

// ConfigYAML returns the config file as it is now.
func (s *Sandbox) ConfigYAML() ([]byte, error) { return os.ReadFile(s.ConfigPath()) }

// WriteConfig replaces the config file atomically (a rename), so the
// operator's watcher never reads half a file. Invalid content is written
// as given: tests of rejected edits need that.
func (s *Sandbox) WriteConfig(data []byte) error {
	return testfleet.WriteFileAtomic(s.ConfigPath(), data, 0o644)
}

// EditConfig decodes the config file (without defaults), lets fn change
// it and writes the result. Comments are not kept.
func (s *Sandbox) EditConfig(fn func(r *v1alpha1.Registry)) error {
	b, err := s.ConfigYAML()
	if err != nil {
		return err
	}
	out, err := editYAML(b, fn)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, s.ConfigPath())
	}
	if r, err := v1alpha1.Parse(out); err == nil {
		if err := checkAgentPaths(&r.Spec); err != nil {
			return err
		}
	}
	return s.WriteConfig(out)
}

// editYAML decodes a config (without defaults), lets fn change it and
// encodes the result. Comments are not kept.
func editYAML(b []byte, fn func(r *v1alpha1.Registry)) ([]byte, error) {
	r, err := v1alpha1.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("sandbox: decode the config: %w", err)
	}
	fn(r)
	out, err := yaml.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode the edited config: %w", err)
	}
	return out, nil
}

// Spec loads the config file as the operator would: defaults applied,
// validated.
func (s *Sandbox) Spec() (*v1alpha1.Registry, error) { return v1alpha1.Load(s.ConfigPath()) }
