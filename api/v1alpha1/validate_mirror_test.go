package v1alpha1

import (
	"strings"
	"testing"
)

// withMirror turns the mirror on in the sample and defaults again.
func withMirror(r *Registry, m MirrorSpec) {
	r.Spec.Mirror = &m
	Default(r)
}

func TestMirrorDefaults(t *testing.T) {
	r := sample(t)
	Default(r)
	if r.Spec.MirrorEnabled() || r.Spec.MirrorAddress() != "" || r.Spec.DockerMirrorURL() != "" {
		t.Fatal("the mirror is absent from the sample: nothing may be on")
	}
	withMirror(r, MirrorSpec{Address: "10.0.0.5:5001"})
	m := r.Spec.Mirror
	if !r.Spec.MirrorEnabled() || m.ID != DefaultMirrorID || m.Image != DefaultAppImage || m.RemoteURL != DefaultMirrorRemoteURL ||
		*m.Instances != 1 || m.ContainerPort != DefaultContainerPort || m.VIP != "10.0.0.5:5001" ||
		m.CertsHostPath != DefaultMirrorCertsHost || m.DataHostPath != DefaultMirrorDataHost {
		t.Errorf("mirror defaults: %+v", m)
	}
	if got := r.Spec.DockerMirrorURL(); got != "https://10.0.0.5:5001" {
		t.Errorf("DockerMirrorURL = %q", got)
	}
	if r.Spec.MirrorHost() != "10.0.0.5" {
		t.Errorf("MirrorHost = %q", r.Spec.MirrorHost())
	}
	if errs := Validate(r); len(errs) > 0 {
		t.Fatalf("the mirror on the sample must validate: %v", errs)
	}
	off := false
	withMirror(r, MirrorSpec{Address: "10.0.0.5:5001", DockerRegistryMirrors: &off})
	if r.Spec.DockerMirrorURL() != "" {
		t.Error("dockerRegistryMirrors: false keeps no daemon.json entry")
	}
	withMirror(r, MirrorSpec{Address: "10.0.0.5:5001", Enabled: &off})
	if r.Spec.MirrorEnabled() || r.Spec.MirrorAddress() != "" {
		t.Error("enabled: false turns the mirror off")
	}
}

func TestMirrorRefused(t *testing.T) {
	p := "spec.mirror."
	mir := func(m MirrorSpec) func(r *Registry) {
		if m.Address == "" {
			m.Address = "10.0.0.5:5001"
		}
		return func(r *Registry) { withMirror(r, m) }
	}
	tests := map[string]struct {
		mutate func(r *Registry)
		path   string
		reason string
	}{
		"no address":         {func(r *Registry) { withMirror(r, MirrorSpec{}) }, p + "address", "is required"},
		"address no port":    {mir(MirrorSpec{Address: "10.0.0.5"}), p + "address", "host:port"},
		"address bad host":   {mir(MirrorSpec{Address: "a_b:5001"}), p + "address", "neither an IP"},
		"address bad port":   {mir(MirrorSpec{Address: "10.0.0.5:70000"}), p + "address", "between 1 and 65535"},
		"address dot":        {mir(MirrorSpec{Address: "mirror.example.:5001"}), p + "address", "ends in a dot"},
		"address = registry": {mir(MirrorSpec{Address: "192.168.0.1:443"}), p + "address", "must differ from spec.registry.address"},
		"remote ftp":         {mir(MirrorSpec{RemoteURL: "ftp://hub.example"}), p + "remoteURL", "http(s) URL"},
		"remote creds":       {mir(MirrorSpec{RemoteURL: "https://u:pw@hub.example"}), p + "remoteURL", "must not carry credentials"},
		"user file relative": {mir(MirrorSpec{RemoteUsernameFile: "user", RemotePasswordFile: "/run/pw"}), p + "remoteUsernameFile", "absolute"},
		"password file unsafe": {mir(MirrorSpec{RemoteUsernameFile: "/run/u", RemotePasswordFile: "/run/p w"}),
			p + "remotePasswordFile", "may only hold"},
		"only user file":    {mir(MirrorSpec{RemoteUsernameFile: "/run/u"}), p + "remotePasswordFile", "both"},
		"id = app":          {mir(MirrorSpec{ID: "/registry"}), p + "id", "must differ from spec.app.id"},
		"id bad":            {mir(MirrorSpec{ID: "mirror"}), p + "id", "absolute Marathon app id"},
		"bad constraint":    {mir(MirrorSpec{Constraints: [][]string{{"hostname", "NEAR", "x"}}}), p + "constraints[0][1]", "must be one of"},
		"bad regex":         {mir(MirrorSpec{Constraints: [][]string{{"hostname", "LIKE", "("}}}), p + "constraints[0][2]", "regular expression"},
		"vip bad":           {mir(MirrorSpec{VIP: "nope"}), p + "vip", "host:port"},
		"certs relative":    {mir(MirrorSpec{CertsHostPath: "certs"}), p + "certsHostPath", "absolute"},
		"certs = app certs": {mir(MirrorSpec{CertsHostPath: DefaultCertsHostPath}), p + "certsHostPath", "must differ from spec.app"},
		"data = app data":   {mir(MirrorSpec{DataHostPath: DefaultDataHostPath + "/"}), p + "dataHostPath", "must differ from spec.app"},
		"data = own certs":  {mir(MirrorSpec{DataHostPath: DefaultMirrorCertsHost}), p + "dataHostPath", "must differ from certsHostPath"},
		"insecure tls": {func(r *Registry) {
			r.Spec.TLS.Mode = TLSInsecure
			withMirror(r, MirrorSpec{Address: "10.0.0.5:5001"})
		}, "spec.mirror", "needs spec.marathon"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := sample(t)
			Default(r)
			tc.mutate(r)
			errs := Validate(r)
			if hasFieldError(errs, tc.path, tc.reason) {
				return
			}
			t.Errorf("want %s: ...%s..., got %v", tc.path, tc.reason, errs)
		})
	}
}

func TestMirrorRedacted(t *testing.T) {
	r := sample(t)
	withMirror(r, MirrorSpec{Address: "10.0.0.5:5001", RemoteURL: "https://user:secret@hub.example"})
	if got := r.Redact().Spec.Mirror.RemoteURL; strings.Contains(got, "secret") || strings.Contains(got, "user") {
		t.Errorf("redacted remoteURL still shows user info: %q", got)
	}
	if !strings.Contains(r.Spec.Mirror.RemoteURL, "secret") {
		t.Error("Redact must copy, not change the spec")
	}
}

func TestMirrorMakesAllowDockerRestartMatter(t *testing.T) {
	r := sample(t)
	Default(r)
	r.Spec.Trust.AllowDockerRestart = true
	has := func(sub string) bool {
		for _, w := range Warnings(r) {
			if strings.Contains(w, sub) {
				return true
			}
		}
		return false
	}
	if !has("has no effect") {
		t.Fatal("without insecure mode or a mirror, allowDockerRestart has no effect")
	}
	withMirror(r, MirrorSpec{Address: "10.0.0.5:5001"})
	if has("has no effect") || !has("live-restore") {
		t.Errorf("with the mirror in registry-mirrors it restarts dockerd: %q", Warnings(r))
	}
}
