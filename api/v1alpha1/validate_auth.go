package v1alpha1

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	// htpasswdNameRE: no ':' (the htpasswd separator), no whitespace.
	htpasswdNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	realmRE        = regexp.MustCompile(`^[A-Za-z0-9 ._-]{1,64}$`)
)

// auth checks spec.auth and spec.pullCredentials.
func (v *validator) auth(s *Spec) {
	if s.Auth != nil && s.Auth.Htpasswd == nil {
		v.add("spec.auth", "names no method: set spec.auth.htpasswd (or remove spec.auth)")
	}
	if s.AuthEnabled() {
		v.htpasswd(s)
	}
	p := s.PullCredentials
	if p == nil {
		return
	}
	if !s.AuthEnabled() {
		v.add("spec.pullCredentials", "needs spec.auth.htpasswd: without auth there is nothing to pull with")
	}
	if s.Nodes == nil {
		v.add("spec.pullCredentials", "needs spec.nodes: the credentials are written to every agent over SSH")
	}
	tgz, cfg, mesos := p.Paths()
	v.credentialsFile("spec.pullCredentials.dockerTarGz", tgz)
	v.credentialsFile("spec.pullCredentials.dockerConfig", cfg)
	v.credentialsFile("spec.pullCredentials.mesosDockerConfig", mesos)
	if tgz != "" && tgz == cfg || mesos != "" && (mesos == tgz || mesos == cfg) {
		v.add("spec.pullCredentials", "each form needs a file of its own, got the same path twice")
	}
}

func (v *validator) htpasswd(s *Spec) {
	h := s.Auth.Htpasswd
	p := "spec.auth.htpasswd."
	if !s.PlacementEnabled() {
		v.add("spec.auth", "needs spec.app, spec.nodes and tls (not insecure): the htpasswd file and the registry's "+
			"config are placed on the registry's agents with its certificate")
	}
	if s.UIEnabled() {
		v.add("spec.ui.enabled", "the UI app cannot log in to a registry with spec.auth set; disable the UI or auth")
	}
	if !realmRE.MatchString(h.Realm) {
		v.add(p+"realm", "must be 1-64 letters, digits, spaces and . _ -, got %q", h.Realm)
	}
	if !htpasswdNameRE.MatchString(h.PullUser) {
		v.add(p+"pullUser", "must be 1-64 letters, digits and . _ -, got %q", h.PullUser)
	}
	if v.positive(p+"pullPasswordRotation", h.PullPasswordRotation) && h.PullPasswordRotation.Duration < MinPullRotation {
		v.add(p+"pullPasswordRotation", "must be at least %s (every new password goes to every agent), got %s",
			MinPullRotation, h.PullPasswordRotation.Duration)
	}
	var seen []string
	for i, u := range h.Users {
		up := p + "users[" + strconv.Itoa(i) + "]."
		switch {
		case !htpasswdNameRE.MatchString(u.Name):
			v.add(up+"name", "must be 1-64 letters, digits and . _ -, got %q", u.Name)
		case slices.Contains(seen, u.Name):
			v.add(up+"name", "%q is listed twice", u.Name)
		case u.Name == h.PullUser || strings.HasPrefix(u.Name, h.PullUser+"-"):
			v.add(up+"name", "%q is taken by the generated pull user (%s, %s-<generation>); rename one of them",
				u.Name, h.PullUser, h.PullUser)
		}
		seen = append(seen, u.Name)
		v.absPath(up+"passwordFile", u.PasswordFile, true)
	}
}

// credentialsFile checks a pull-credentials path ("" is off).
func (v *validator) credentialsFile(p, val string) {
	if val == "" {
		return
	}
	v.absPath(p, val, true)
	if c := path.Clean(val); strings.HasSuffix(val, "/") || slices.Contains(systemDirs, c) || c == "/" {
		v.add(p, "must name a file, got %q", val)
	}
}
