package v1alpha1

import (
	"math"
	"net/url"
	"path"
	"slices"
	"strings"
)

// MaxCommonName is X.509's ub-common-name: a longer subject CN makes a
// certificate that strict verifiers refuse.
const MaxCommonName = 64

// Directories the node reconcilers write into. A persisted sysctl or module
// list anywhere else is never read at boot, and a path elsewhere could
// overwrite an unrelated file.
const (
	SysctlDir      = "/etc/sysctl.d"
	ModulesLoadDir = "/etc/modules-load.d"
)

// systemDirs are shared directories no trust directory may be: the operator
// adds and removes files in a trust directory, so naming one of these would
// let it write among (or, for a stale entry, delete) files it does not own.
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
	"/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
}

// sharedDirs are second-level directories shared by many programs; the
// operator's own state directory may be below them, never one of them.
var sharedDirs = []string{
	"/etc/ssl", "/etc/pki", "/etc/docker", "/usr/bin", "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share",
	"/var/lib", "/var/log", "/var/run", "/var/tmp", "/var/cache", "/var/spool", "/run/secrets",
}

// finite reports a number that is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func (v *validator) commonName(p, cn string, defaulted bool) {
	if len(cn) <= MaxCommonName {
		return
	}
	if defaulted {
		v.add(p, "defaults to the registry host, which is %d characters; X.509 allows at most %d: set a shorter commonName",
			len(cn), MaxCommonName)
		return
	}
	v.add(p, "is %d characters; X.509 allows at most %d", len(cn), MaxCommonName)
}

// fileIn checks a file the operator writes on every node: it must sit
// directly in dir, where the boot-time reader looks for *.conf files.
func (v *validator) fileIn(p, val, dir string) {
	if val == "" || !strings.HasPrefix(val, "/") {
		return // absPath reports it
	}
	c := path.Clean(val)
	if path.Dir(c) != dir || !strings.HasSuffix(c, ".conf") || strings.HasSuffix(val, "/") {
		v.add(p, "must be a .conf file directly in %s (read at boot from there), got %q", dir, val)
	}
}

// trustDir checks a directory the trust reconciler adds files to.
func (v *validator) trustDir(p, val string) {
	if val == "" || !strings.HasPrefix(val, "/") {
		return
	}
	if c := path.Clean(val); slices.Contains(systemDirs, c) {
		v.add(p, "must not be %s: the operator adds and removes files there; name a directory of its own such as %s",
			c, DefaultCertsDir)
	}
}

// stateDir checks tls.stateDir: a directory only the operator uses, since it
// holds private keys and old generations are removed from it.
func (v *validator) stateDir(p, val string) {
	if val == "" || !strings.HasPrefix(val, "/") {
		return // absPath reports it, and any . or .. segment
	}
	if c := path.Clean(val); slices.Contains(systemDirs, c) || slices.Contains(sharedDirs, c) {
		v.add(p, "must not be the shared directory %s: the operator keeps private keys there and removes what it "+
			"replaced; use a directory of its own such as %s", c, DefaultStateDir)
	}
}

// noCredentials refuses user:password@ in a URL: the spec is shown on the
// status page and in logs, so secrets live in files it names.
func (v *validator) noCredentials(p, raw, instead string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return true
	}
	v.add(p, "must not carry credentials (user info in %q): %s", redactURL(raw), instead)
	return false
}

// redactURL hides a URL's user info (user name and password both: a lone
// user name is often a token) for messages and the status page.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return RedactedText + raw[i:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User(RedactedText)
	return u.String()
}
