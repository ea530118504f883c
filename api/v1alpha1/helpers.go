package v1alpha1

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// hostOf returns the host part of "host:port", or s itself.
func hostOf(s string) string {
	h, _, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	return h
}

// RegistryHost is the host part of registry.address.
func (r *RegistryEndpoint) RegistryHost() string { return hostOf(r.Address) }

// RegistryPort is the port of registry.address (0 if it has none).
func (r *RegistryEndpoint) RegistryPort() int {
	_, p, err := net.SplitHostPort(r.Address)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// certsDirName is what may appear as one path component under certs.d: a
// host name or IP (IPv6 in brackets) and an optional port. Anything else
// could name another directory. A trailing dot is refused: Docker looks up
// certs.d/<host:port> exactly as clients write the address, never with it.
var certsDirName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$`)

// RegistryDirNames returns the certs.d directory names clients may use for
// the registry at address: "host:port", plus "host" when the port is 443.
// It is the one rule for registry.address: validation applies it, and the
// trust reconcilers use its result, so a valid address never fails later.
func RegistryDirNames(address string) ([]string, error) {
	if h, p, err := net.SplitHostPort(address); err == nil && strings.HasSuffix(h, ".") {
		return nil, fmt.Errorf("host %q ends in a dot, which Docker's certs.d directory names never carry: write %q",
			h, net.JoinHostPort(strings.TrimRight(h, "."), p))
	}
	if strings.HasSuffix(address, ".") {
		return nil, fmt.Errorf("host %q ends in a dot, which Docker's certs.d directory names never carry: write %q",
			address, strings.TrimRight(address, "."))
	}
	if !certsDirName.MatchString(address) {
		return nil, fmt.Errorf("%q cannot name a certs.d directory: use host or host:port", address)
	}
	names := []string{address}
	if h, p, err := net.SplitHostPort(address); err == nil && p == "443" {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		names = append(names, h) // clients may omit the default port
	}
	return names, nil
}

// AuthEnabled: the registry requires htpasswd logins.
func (s *Spec) AuthEnabled() bool { return s.Auth != nil && s.Auth.Htpasswd != nil }

// CredentialsEnabled: pull credentials are kept on every agent (and the
// pull password generated and rotated).
func (s *Spec) CredentialsEnabled() bool {
	return s.AuthEnabled() && s.Nodes != nil && s.PullCredentials != nil
}

// Paths returns the enabled forms' paths: "" for a form that is off.
func (p *PullCredentialsSpec) Paths() (dockerTarGz, dockerConfig, mesosDockerConfig string) {
	return deref(p.DockerTarGz), deref(p.DockerConfig), deref(p.MesosDockerConfig)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
