package v1alpha1

import "path"

// mirror checks spec.mirror.
func (v *validator) mirror(s *Spec) {
	m := s.Mirror
	if m == nil {
		return
	}
	p := "spec.mirror."
	if enabled(m.Enabled) && !s.PlacementEnabled() {
		v.add("spec.mirror", "needs spec.marathon, spec.app, spec.nodes and tls (not insecure): the mirror serves the "+
			"registry's certificate and its config file is placed on its agents over SSH")
	}
	v.appCommon(p, m.ID, m.Image, *m.Instances, m.CPUs, m.Mem, m.Constraints, m.ContainerPort, m.VIP, nil, nil)
	if s.App != nil && m.ID == s.App.ID {
		v.add(p+"id", "must differ from spec.app.id (%s)", s.App.ID)
	}
	if s.UI != nil && m.ID == s.UI.ID {
		v.add(p+"id", "must differ from spec.ui.id (%s)", s.UI.ID)
	}
	v.mirrorAddress(p+"address", m.Address, s.Registry)
	v.remoteURL(p+"remoteURL", m.RemoteURL)
	v.credentialsFile(p+"remoteUsernameFile", m.RemoteUsernameFile)
	v.credentialsFile(p+"remotePasswordFile", m.RemotePasswordFile)
	if (m.RemoteUsernameFile == "") != (m.RemotePasswordFile == "") {
		v.add(p+"remotePasswordFile", "set both remoteUsernameFile and remotePasswordFile, or neither")
	}
	v.absPath(p+"certsHostPath", m.CertsHostPath, true)
	v.absPath(p+"dataHostPath", m.DataHostPath, true)
	if path.Clean(m.CertsHostPath) == path.Clean(m.DataHostPath) {
		v.add(p+"dataHostPath", "must differ from certsHostPath (%s)", m.CertsHostPath)
	}
	if a := s.App; a != nil {
		// Sharing either directory with the registry would let the mirror
		// serve, or garbage-collect, the private registry's files.
		for _, f := range []struct{ name, val string }{{"certsHostPath", m.CertsHostPath}, {"dataHostPath", m.DataHostPath}} {
			if c := path.Clean(f.val); c == path.Clean(a.CertsHostPath) || c == path.Clean(a.DataHostPath) {
				v.add(p+f.name, "must differ from spec.app's certsHostPath and dataHostPath (%s, %s): the mirror "+
					"keeps its own config file and cache", a.CertsHostPath, a.DataHostPath)
			}
		}
	}
}

// mirrorAddress applies registry.address's rule to the mirror's address.
func (v *validator) mirrorAddress(p, addr string, r *RegistryEndpoint) {
	if addr == "" {
		v.add(p, "is required: host:port where clients reach the mirror, such as 10.0.0.5:5001")
		return
	}
	if !v.hostPort(p, addr) {
		return
	}
	if _, err := RegistryDirNames(addr); err != nil {
		v.add(p, "%v", err)
		return
	}
	if r != nil && addr == r.Address {
		v.add(p, "must differ from spec.registry.address (%s): agents trust and name each by its address", r.Address)
	}
}

// remoteURL: the upstream, http(s), credentials in files only.
func (v *validator) remoteURL(p, raw string) {
	v.httpURL(p, raw)
	v.noCredentials(p, raw, "put them in remoteUsernameFile and remotePasswordFile")
}
