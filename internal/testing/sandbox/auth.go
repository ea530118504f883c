package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// Where the pull credentials go on the agents with auth on. Each lies in a
// directory every agent has its own copy of (testfleet.PrivatePaths):
// the spec's defaults (/etc/docker.tar.gz) would write into this
// machine's /etc, which the agents share.
const (
	DockerTarGz       = "/etc/docker/docker.tar.gz"
	DockerConfig      = "/root/.docker/config.json"
	MesosDockerConfig = "/etc/docker/mesos-docker-config.json"
	// CIUser is the person/CI user the sandbox's auth config names.
	CIUser = "ci"
)

// CIPasswordFile is the ci user's passwordFile: the sandbox writes a random
// password there at start; SetCIPassword changes it.
func (s *Sandbox) CIPasswordFile() string { return filepath.Join(s.Dir, "secrets", "ci.password") }

// CIPassword returns the ci user's password (the file's first line).
func (s *Sandbox) CIPassword() (string, error) {
	b, err := os.ReadFile(s.CIPasswordFile())
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return line, nil
}

// SetCIPassword replaces the ci user's password file atomically.
func (s *Sandbox) SetCIPassword(pw string) error {
	if err := os.MkdirAll(filepath.Dir(s.CIPasswordFile()), 0o700); err != nil {
		return err
	}
	return testfleet.WriteFileAtomic(s.CIPasswordFile(), []byte(pw+"\n"), 0o600)
}

// writeCIPassword gives the ci user a random password unless it has one.
func (s *Sandbox) writeCIPassword() error {
	if _, err := os.Stat(s.CIPasswordFile()); err == nil {
		return nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return s.SetCIPassword("ci-" + hex.EncodeToString(b))
}

// EnableAuth turns on htpasswd auth for r the way the sandbox runs it: the
// ci user with passwordFile ciPasswordFile, the generated pull user
// rotated every rotation (0: the spec's default), and the pull
// credentials on every agent at DockerTarGz, DockerConfig and
// MesosDockerConfig.
func EnableAuth(r *v1alpha1.Registry, ciPasswordFile string, rotation time.Duration) {
	h := &v1alpha1.HtpasswdSpec{Users: []v1alpha1.HtpasswdUser{{Name: CIUser, PasswordFile: ciPasswordFile}}}
	if rotation > 0 {
		h.PullPasswordRotation = v1alpha1.D(rotation)
	}
	r.Spec.Auth = &v1alpha1.AuthSpec{Htpasswd: h}
	tgz, cfg, mesos := DockerTarGz, DockerConfig, MesosDockerConfig
	r.Spec.PullCredentials = &v1alpha1.PullCredentialsSpec{DockerTarGz: &tgz, DockerConfig: &cfg, MesosDockerConfig: &mesos}
}

// EnableAuth edits the config file to turn auth on (see the function
// EnableAuth); the operator reloads it.
func (s *Sandbox) EnableAuth(rotation time.Duration) error {
	if err := s.writeCIPassword(); err != nil {
		return err
	}
	return s.EditConfig(func(r *v1alpha1.Registry) { EnableAuth(r, s.CIPasswordFile(), rotation) })
}

// checkAgentPaths refuses a config that would make the operator write pull
// credentials outside the agents' private directories: on a testfleet
// host that is this machine's own file system.
func checkAgentPaths(spec *v1alpha1.Spec) error {
	if !spec.CredentialsEnabled() {
		return nil
	}
	tgz, cfg, mesos := spec.PullCredentials.Paths()
	for _, p := range []string{tgz, cfg, mesos} {
		if p != "" && !privatePath(p) {
			return fmt.Errorf("sandbox: pull credentials at %s would be written to this machine, not an agent: "+
				"set spec.pullCredentials to paths under the agents' private directories %v (for example %s, %s)",
				p, testfleet.PrivatePaths, DockerTarGz, DockerConfig)
		}
	}
	return nil
}

func privatePath(p string) bool {
	p = filepath.Clean(p)
	for _, d := range testfleet.PrivatePaths {
		if strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// Creds say how skopeo authenticates to the registry. The zero value sends
// no credentials at all (skopeo would otherwise find the agent's
// /root/.docker/config.json by itself).
type Creds struct {
	User, Password string
	// AuthFile is a docker config.json on the agent.
	AuthFile string
}

func (c Creds) flags(dir string) []string {
	switch {
	case c.User != "":
		return []string{"--" + dir + "-creds", c.User + ":" + c.Password}
	case c.AuthFile != "":
		return []string{"--" + dir + "-authfile", c.AuthFile}
	}
	return []string{"--" + dir + "-no-creds"}
}

// String names the credentials without the password.
func (c Creds) String() string {
	switch {
	case c.User != "":
		return "user " + c.User
	case c.AuthFile != "":
		return "authfile " + c.AuthFile
	}
	return "no credentials"
}

// PushAs is Push with credentials c.
func (s *Sandbox) PushAs(ctx context.Context, i int, ref string, c Creds) (string, error) {
	return s.push(ctx, i, ref, c.flags("dest"))
}

// PullAs is Pull with credentials c.
func (s *Sandbox) PullAs(ctx context.Context, i int, ref string, c Creds) (string, error) {
	return s.pull(ctx, i, ref, c.flags("src"))
}

// Unauthorized reports whether err is a skopeo copy the registry refused
// for want of valid credentials (HTTP 401).
func Unauthorized(err error) bool {
	var ce *CopyError
	if !errors.As(err, &ce) {
		return false
	}
	out := strings.ToLower(ce.Output)
	return strings.Contains(out, "unauthorized") || strings.Contains(out, "401")
}

// PullCredentials decodes the entry for the registry in the docker
// config.json at path on agent i: the user and password agents pull with.
func (s *Sandbox) PullCredentials(ctx context.Context, i int, path string) (user, password string, err error) {
	h := s.Agent(i)
	if h == nil {
		return "", "", fmt.Errorf("sandbox: no agent %d", i)
	}
	b, err := h.ReadFile(ctx, path)
	if err != nil {
		return "", "", err
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", "", fmt.Errorf("sandbox: %s on agent %d: %w", path, i, err)
	}
	e, ok := cfg.Auths[s.RegistryAddress]
	if !ok {
		return "", "", fmt.Errorf("sandbox: %s on agent %d has no entry for %s", path, i, s.RegistryAddress)
	}
	raw, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return "", "", fmt.Errorf("sandbox: %s on agent %d: auth for %s: %w", path, i, s.RegistryAddress, err)
	}
	user, password, ok = strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("sandbox: %s on agent %d: auth for %s is not user:password", path, i, s.RegistryAddress)
	}
	return user, password, nil
}
