package v1alpha1

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Shell safety: every spec value that reaches a node (paths, the registry
// address that names a certs.d directory, hostnames) is checked here against
// the allow-lists below, so no valid spec can carry a quote, space, `$`,
// backquote, `;` or newline to a remote shell. Node code additionally passes
// values as positional arguments, never inside script text; this is the
// first of those two guarantees.
var (
	safePathRE   = regexp.MustCompile(`^/[A-Za-z0-9._/@+:=-]*$`)
	dnsNameRE    = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$`)
	userRE       = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	appSegmentRE = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	metaNameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

var (
	keyAlgorithms     = []string{"ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096"}
	tlsModes          = []string{TLSSelfSigned, TLSProvided, TLSInsecure}
	hostKeyPolicies   = []string{HostKeyStrict, HostKeyAcceptNew}
	runtimes          = []string{RuntimeDocker, RuntimeUCR, RuntimeContainers, RuntimeContainerd}
	modes             = []string{ModeEnforce, ModeReport}
	healthProtocols   = []string{"TCP", "HTTP", "HTTPS", "MESOS_TCP", "MESOS_HTTP", "MESOS_HTTPS"}
	stateStores       = []string{StateStoreZooKeeper, StateStoreSharedDir}
	constraintOps     = []string{"UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS"}
	constraintNoValue = []string{"UNIQUE"}
)

// ReservedAppEnv are the registry app's env keys the operator sets itself
// (TLS paths, listen address, HTTP secret); spec.app.env must not set them.
var ReservedAppEnv = []string{"REGISTRY_HTTP_TLS_CERTIFICATE", "REGISTRY_HTTP_TLS_KEY", "REGISTRY_HTTP_SECRET", "REGISTRY_HTTP_ADDR"}

// OwnedLabelPrefix marks the labels the operator keeps on its apps.
const OwnedLabelPrefix = "registry-operator/"

type validator struct{ errs FieldErrors }

func (v *validator) add(p, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: p, Reason: fmt.Sprintf(format, args...)})
}

// Validate checks a defaulted Registry and returns every problem at once,
// each as `spec.path.to.field: reason`.
func Validate(r *Registry) FieldErrors {
	v := &validator{}
	if r.APIVersion != APIVersion {
		v.add("apiVersion", "must be %q, got %q", APIVersion, r.APIVersion)
	}
	if r.Kind != Kind {
		v.add("kind", "must be %q, got %q", Kind, r.Kind)
	}
	if !metaNameRE.MatchString(r.Metadata.Name) {
		v.add("metadata.name", "must be lower-case letters, digits and '-' (at most 63), got %q", r.Metadata.Name)
	}
	s := &r.Spec
	v.marathon(s.Marathon)
	v.nodes(s.Nodes)
	v.registry(s)
	v.tls(s.TLS, s.Registry)
	v.trust(s.Trust)
	v.conntrack(s.Conntrack)
	v.app(s.App)
	v.ui(s.UI, s.App)
	v.reconcile(&s.Reconcile)
	v.leader(s.LeaderElection, s.TLS)
	v.auth(s)
	v.maintenance(s)
	v.mirror(s)
	return v.errs
}

// Warnings lists valid but risky choices that `validate` prints loudly.
func Warnings(r *Registry) []string {
	s := &r.Spec
	var w []string
	if s.TLS != nil && s.TLS.Mode == TLSInsecure {
		w = append(w, "spec.tls.mode: insecure sends every image in clear text and lets anyone on the path alter it; use it only in a lab")
	}
	if s.Trust != nil && enabled(s.Trust.Enabled) && s.Nodes == nil {
		w = append(w, "spec.trust: enabled but spec.nodes is absent, so no agent will be configured")
	}
	if s.Conntrack != nil && enabled(s.Conntrack.Enabled) && s.Nodes == nil {
		w = append(w, "spec.conntrack: enabled but spec.nodes is absent, so no agent will be configured")
	}
	if s.App != nil && enabled(s.App.Enabled) && s.Marathon == nil {
		w = append(w, "spec.app: enabled but spec.marathon is absent, so the app will not be managed")
	}
	if t := s.Trust; t != nil && t.AllowDockerRestart {
		if (s.TLS == nil || s.TLS.Mode != TLSInsecure) && s.DockerMirrorURL() == "" {
			w = append(w, "spec.trust.allowDockerRestart: has no effect unless tls.mode is insecure or spec.mirror.dockerRegistryMirrors is on")
		} else {
			w = append(w, "spec.trust.allowDockerRestart: restarting dockerd stops its containers unless live-restore is enabled on the agents")
		}
	}
	if s.App != nil && s.Nodes != nil {
		for i, c := range s.App.Constraints {
			op := ""
			if len(c) > 1 {
				op = strings.ToUpper(c[1])
			}
			if len(c) > 2 && c[0] == "hostname" && (op == "CLUSTER" || op == "IS") && net.ParseIP(c[2]) == nil {
				w = append(w, fmt.Sprintf("spec.app.constraints[%d]: %s %q names a host name, which agents report themselves: "+
					"the server key is placed only on agents whose address matches, so name the address (%s %q)", i, op, c[2],
					"LIKE", c[2]+`|10\.0\.0\.5`))
			}
		}
	}
	if s.Nodes != nil && s.Nodes.SSH.HostKeyPolicy == HostKeyAcceptNew {
		w = append(w, "spec.nodes.ssh.hostKeyPolicy: acceptNew trusts the first key each new agent presents")
	}
	return w
}

func (v *validator) marathon(m *MarathonSpec) {
	if m == nil {
		return
	}
	if len(m.URLs) == 0 {
		v.add("spec.marathon.urls", "needs at least one URL such as http://marathon.mesos:8080")
	}
	for i, u := range m.URLs {
		p := fmt.Sprintf("spec.marathon.urls[%d]", i)
		if v.noCredentials(p, u, "put the user in spec.marathon.basicAuth.username and the password in the file "+
			"spec.marathon.basicAuth.passwordFile names") {
			v.httpURL(p, u)
		}
	}
	v.positive("spec.marathon.timeout", m.Timeout)
	if m.BasicAuth != nil {
		if m.BasicAuth.Username == "" {
			v.add("spec.marathon.basicAuth.username", "is required")
		}
		v.absPath("spec.marathon.basicAuth.passwordFile", m.BasicAuth.PasswordFile, true)
		if m.DCOSTokenFile != "" {
			v.add("spec.marathon.dcosTokenFile", "cannot be combined with basicAuth; choose one")
		}
	}
	v.absPath("spec.marathon.dcosTokenFile", m.DCOSTokenFile, false)
}

func (v *validator) nodes(n *NodesSpec) {
	if n == nil {
		return
	}
	if n.Mesos == nil && len(n.Static) == 0 {
		v.add("spec.nodes", "names no agents: set nodes.mesos.url or list nodes.static")
	}
	if n.Mesos != nil && v.noCredentials("spec.nodes.mesos.url", n.Mesos.URL,
		"the agent list is read without credentials; remove the user info") {
		v.httpURL("spec.nodes.mesos.url", n.Mesos.URL)
	}
	for i, h := range n.Static {
		v.hostOrHostPort(fmt.Sprintf("spec.nodes.static[%d]", i), h)
	}
	p := "spec.nodes.ssh."
	s := &n.SSH
	if !userRE.MatchString(s.User) {
		v.add(p+"user", "must be a POSIX user name, got %q", s.User)
	}
	v.port(p+"port", s.Port, false)
	v.absPath(p+"privateKeyFile", s.PrivateKeyFile, true)
	v.absPath(p+"knownHostsFile", s.KnownHostsFile, true)
	v.enum(p+"hostKeyPolicy", s.HostKeyPolicy, hostKeyPolicies)
	if s.Concurrency < 1 || s.Concurrency > 4096 {
		v.add(p+"concurrency", "must be between 1 and 4096, got %d", s.Concurrency)
	}
	v.positive(p+"connectTimeout", s.ConnectTimeout)
	v.positive(p+"commandTimeout", s.CommandTimeout)
	v.positive(p+"keepAlive", s.KeepAlive)
	v.absPath(p+"sftpServer", s.SFTPServer, false)
}

func (v *validator) registry(s *Spec) {
	r := s.Registry
	if r == nil {
		if s.TLS != nil || s.Trust != nil || s.App != nil {
			v.add("spec.registry", "is required: tls, trust and app all need registry.address")
		}
		return
	}
	if v.hostPort("spec.registry.address", r.Address) {
		// The trust reconcilers name certs.d directories with this same
		// function: an address valid here never fails there.
		if _, err := RegistryDirNames(r.Address); err != nil {
			v.add("spec.registry.address", "%v", err)
		}
	}
	for i, d := range r.DNSNames {
		if !dnsNameRE.MatchString(d) || len(d) > 253 {
			v.add(fmt.Sprintf("spec.registry.dnsNames[%d]", i), "is not a DNS name: %q", d)
		}
	}
	for i, ip := range r.IPAddresses {
		if net.ParseIP(ip) == nil {
			v.add(fmt.Sprintf("spec.registry.ipAddresses[%d]", i), "is not an IP address: %q", ip)
		}
	}
}

func (v *validator) tls(t *TLSSpec, r *RegistryEndpoint) {
	if t == nil {
		return
	}
	p := "spec.tls."
	v.enum(p+"mode", t.Mode, tlsModes)
	v.absPath(p+"stateDir", t.StateDir, true)
	v.stateDir(p+"stateDir", t.StateDir)
	v.commonName(p+"ca.commonName", t.CA.CommonName, false)
	v.commonName(p+"server.commonName", t.Server.CommonName, r != nil && t.Server.CommonName == hostOf(r.Address))
	v.enum(p+"keyAlgorithm", t.KeyAlgorithm, keyAlgorithms)
	v.lifetime(p+"ca", t.CA.CertSpec)
	v.lifetime(p+"server", t.Server)
	if t.CA.RotationOverlap.Invalid() || t.CA.RotationOverlap.Duration < 0 {
		v.add(p+"ca.rotationOverlap", "must be a duration such as 5m, got %q", t.CA.RotationOverlap.Raw)
	}
	if t.CA.Duration.Duration > 0 && t.Server.Duration.Duration > t.CA.Duration.Duration {
		v.add(p+"server.duration", "(%s) is longer than ca.duration (%s): the server certificate would outlive its CA",
			t.Server.Duration.Duration, t.CA.Duration.Duration)
	}
	switch {
	case t.Mode == TLSProvided && t.Provided == nil:
		v.add(p+"provided", "is required when mode is provided: set certFile, keyFile and caFile")
	case t.Mode != TLSProvided && t.Provided != nil:
		v.add(p+"provided", "is only used with mode: provided (mode is %q)", t.Mode)
	case t.Provided != nil:
		v.absPath(p+"provided.certFile", t.Provided.CertFile, true)
		v.absPath(p+"provided.keyFile", t.Provided.KeyFile, true)
		v.absPath(p+"provided.caFile", t.Provided.CAFile, true)
	}
}

func (v *validator) lifetime(p string, c CertSpec) {
	okD := v.positive(p+".duration", c.Duration)
	okR := v.positive(p+".renewBefore", c.RenewBefore)
	if okD && c.Duration.Duration < time.Minute {
		v.add(p+".duration", "must be at least 1m, got %s", c.Duration.Duration)
	}
	if okD && okR && c.RenewBefore.Duration >= c.Duration.Duration {
		v.add(p+".renewBefore", "(%s) must be shorter than duration (%s)", c.RenewBefore.Duration, c.Duration.Duration)
	}
}

func (v *validator) trust(t *TrustSpec) {
	if t == nil {
		return
	}
	for i, d := range t.CertsDirs {
		p := fmt.Sprintf("spec.trust.certsDirs[%d]", i)
		v.absPath(p, d, true)
		v.trustDir(p, d)
	}
	seen := map[string]bool{}
	for i, r := range t.Runtimes {
		p := fmt.Sprintf("spec.trust.runtimes[%d]", i)
		v.enum(p, r, runtimes)
		if seen[r] {
			v.add(p, "lists %q twice", r)
		}
		seen[r] = true
	}
	v.absPath("spec.trust.ucrCertsDir", t.UCRCertsDir, true)
	v.trustDir("spec.trust.ucrCertsDir", t.UCRCertsDir)
}

func (v *validator) conntrack(c *ConntrackSpec) {
	if c == nil {
		return
	}
	v.absPath("spec.conntrack.persistFile", c.PersistFile, true)
	v.absPath("spec.conntrack.modulesLoadFile", c.ModulesLoadFile, true)
	v.fileIn("spec.conntrack.persistFile", c.PersistFile, SysctlDir)
	v.fileIn("spec.conntrack.modulesLoadFile", c.ModulesLoadFile, ModulesLoadDir)
}

func (v *validator) app(a *AppSpec) {
	if a == nil {
		return
	}
	p := "spec.app."
	v.appCommon(p, a.ID, a.Image, *a.Instances, a.CPUs, a.Mem, a.Constraints, a.ContainerPort, a.VIP, a.Labels, a.Env)
	for k := range a.Env {
		if slices.Contains(ReservedAppEnv, k) {
			v.add(p+"env."+k, "is set by the operator from the spec (tls, registry, httpSecretFile); remove it")
		}
	}
	v.port(p+"hostPort", a.HostPort, true)
	v.port(p+"servicePort", a.ServicePort, true)
	v.absPath(p+"certsHostPath", a.CertsHostPath, true)
	v.absPath(p+"dataHostPath", a.DataHostPath, true)
	v.absPath(p+"httpSecretFile", a.HTTPSecretFile, false)
	v.positive(p+"deploymentTimeout", a.DeploymentTimeout)
	if h := a.HealthCheck; h != nil {
		hp := p + "healthCheck."
		v.enum(hp+"protocol", h.Protocol, healthProtocols)
		if strings.Contains(h.Protocol, "HTTP") && h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			v.add(hp+"path", "must start with /, got %q", h.Path)
		}
		v.positive(hp+"gracePeriod", h.GracePeriod)
		okI := v.positive(hp+"interval", h.Interval)
		okT := v.positive(hp+"timeout", h.Timeout)
		if okI && okT && h.Timeout.Duration >= h.Interval.Duration {
			v.add(hp+"timeout", "(%s) must be shorter than interval (%s), as Marathon requires", h.Timeout.Duration, h.Interval.Duration)
		}
		if h.MaxConsecutiveFailures < 0 {
			v.add(hp+"maxConsecutiveFailures", "must not be negative")
		}
	}
	if u := a.UpgradeStrategy; u != nil {
		v.ratio(p+"upgradeStrategy.minimumHealthCapacity", u.MinimumHealthCapacity)
		v.ratio(p+"upgradeStrategy.maximumOverCapacity", u.MaximumOverCapacity)
	}
}

func (v *validator) ui(u *UISpec, a *AppSpec) {
	if u == nil {
		return
	}
	v.appCommon("spec.ui.", u.ID, u.Image, *u.Instances, u.CPUs, u.Mem, u.Constraints, u.ContainerPort, u.VIP, u.Labels, u.Env)
	if a != nil && u.ID == a.ID {
		v.add("spec.ui.id", "must differ from spec.app.id (%s)", a.ID)
	}
}

func (v *validator) appCommon(p, id, image string, instances int, cpus, mem float64, cons [][]string, cport int, vip string, labels, env map[string]string) {
	if !strings.HasPrefix(id, "/") || len(id) < 2 {
		v.add(p+"id", "must be an absolute Marathon app id such as /registry, got %q", id)
	} else {
		for _, seg := range strings.Split(id[1:], "/") {
			if !appSegmentRE.MatchString(seg) {
				v.add(p+"id", "segment %q must be lower-case letters, digits, '-' and '.'", seg)
				break
			}
		}
	}
	if image == "" || strings.ContainsAny(image, " \t\n\"'") {
		v.add(p+"image", "must be a Docker image reference such as registry:2.8.3, got %q", image)
	}
	if instances < 0 {
		v.add(p+"instances", "must not be negative, got %d", instances)
	}
	if !finite(cpus) || cpus <= 0 {
		v.add(p+"cpus", "must be a number greater than 0, got %v", cpus)
	}
	if !finite(mem) || mem < 32 {
		v.add(p+"mem", "must be a number of MiB, at least 32, got %v", mem)
	}
	for i, c := range cons {
		v.constraint(fmt.Sprintf("%sconstraints[%d]", p, i), c)
	}
	v.port(p+"containerPort", cport, false)
	if vip != "" {
		v.hostPort(p+"vip", vip)
	}
	for k := range labels {
		if k == "" || strings.ContainsAny(k, " \t\n") {
			v.add(p+"labels", "key %q must be non-empty without whitespace", k)
		}
		if strings.HasPrefix(k, OwnedLabelPrefix) {
			v.add(p+"labels."+k, "the %s prefix is reserved for the operator's own labels", OwnedLabelPrefix)
		}
	}
	for k := range env {
		if !envNameRE.MatchString(k) {
			v.add(p+"env."+k, "is not a valid environment variable name")
		}
	}
}

func (v *validator) constraint(p string, c []string) {
	if len(c) < 2 || len(c) > 3 {
		v.add(p, "must be [field, OPERATOR] or [field, OPERATOR, value], got %d elements", len(c))
		return
	}
	if c[0] == "" {
		v.add(p+"[0]", "field must not be empty (e.g. hostname)")
	}
	op := c[1]
	if !slices.Contains(constraintOps, op) {
		v.add(p+"[1]", "must be one of %s, got %q", strings.Join(constraintOps, ", "), op)
		return
	}
	if slices.Contains(constraintNoValue, op) {
		if len(c) == 3 {
			v.add(p+"[2]", "%s takes no value", op)
		}
		return
	}
	if op == "GROUP_BY" {
		return // value optional
	}
	if len(c) != 3 {
		v.add(p, "%s needs a value", op)
		return
	}
	if op == "LIKE" || op == "UNLIKE" {
		if _, err := regexp.Compile("^(" + c[2] + ")$"); err != nil {
			v.add(p+"[2]", "is not a valid regular expression: %v", err)
		}
	}
	if op == "MAX_PER" {
		if n, err := strconv.Atoi(c[2]); err != nil || n < 1 {
			v.add(p+"[2]", "MAX_PER needs a positive integer, got %q", c[2])
		}
	}
}

func (v *validator) reconcile(r *ReconcileSpec) {
	if v.positive("spec.reconcile.interval", r.Interval) && r.Interval.Duration < time.Second {
		v.add("spec.reconcile.interval", "must be at least 1s, got %s", r.Interval.Duration)
	}
	v.enum("spec.reconcile.mode", r.Mode, modes)
	v.positive("spec.reconcile.timeout", r.Timeout)
}

func (v *validator) leader(l *LeaderElectionSpec, t *TLSSpec) {
	if l == nil {
		return
	}
	p := "spec.leaderElection."
	if len(l.ZooKeeper) == 0 {
		v.add(p+"zookeeper", "needs at least one host:port such as master.mesos:2181")
	}
	for i, z := range l.ZooKeeper {
		v.hostPort(fmt.Sprintf("%szookeeper[%d]", p, i), z)
	}
	if !strings.HasPrefix(l.Path, "/") || strings.HasSuffix(l.Path, "/") || strings.Contains(l.Path, "//") {
		v.add(p+"path", "must be an absolute znode path without a trailing slash, got %q", l.Path)
	}
	if v.positive(p+"sessionTimeout", l.SessionTimeout) && (l.SessionTimeout.Duration < 2*time.Second || l.SessionTimeout.Duration > time.Minute) {
		v.add(p+"sessionTimeout", "must be between 2s and 1m, got %s", l.SessionTimeout.Duration)
	}
	v.enum(p+"stateStore", l.StateStore, stateStores)
	v.absPath(p+"digestFile", l.DigestFile, false)
	if l.StateStore == StateStoreZooKeeper && t != nil && t.Mode == TLSSelfSigned && l.DigestFile == "" {
		v.add(p+"digestFile", "is required with stateStore zookeeper: private keys are only stored under a digest ACL")
	}
}

// --- field checks ---

func (v *validator) positive(p string, d Duration) bool {
	switch {
	case d.Invalid():
		v.add(p, "is not a duration such as 30s or 1h: %q", d.Raw)
	case d.Duration <= 0:
		v.add(p, "must be greater than zero, got %s", d.Duration)
	default:
		return true
	}
	return false
}

func (v *validator) enum(p, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		v.add(p, "must be one of %s, got %q", strings.Join(allowed, " | "), val)
	}
}

func (v *validator) absPath(p, val string, required bool) {
	if val == "" {
		if required {
			v.add(p, "is required (an absolute path)")
		}
		return
	}
	switch {
	case !strings.HasPrefix(val, "/"):
		v.add(p, "must be an absolute path, got %q", val)
	case !safePathRE.MatchString(val):
		v.add(p, "may only hold letters, digits and . _ / @ + : = -, got %q", val)
	case path.Clean(val) != val && path.Clean(val)+"/" != val:
		v.add(p, "must be a clean path without . or .. segments, got %q (use %q)", val, path.Clean(val))
	}
}

func (v *validator) port(p string, n int, zeroOK bool) {
	if n == 0 && zeroOK {
		return
	}
	if n < 1 || n > 65535 {
		v.add(p, "must be a port between 1 and 65535, got %d", n)
	}
}

func (v *validator) ratio(p string, f *float64) {
	if f != nil && (!finite(*f) || *f < 0 || *f > 1) {
		v.add(p, "must be between 0 and 1, got %v", *f)
	}
}

func (v *validator) httpURL(p, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(p, "must be an http(s) URL such as http://leader.mesos:5050, got %q", redactURL(raw))
	}
}

func validHost(h string) bool {
	return net.ParseIP(h) != nil || (dnsNameRE.MatchString(h) && !strings.HasPrefix(h, "*") && len(h) <= 253)
}

func (v *validator) hostPort(p, s string) bool {
	h, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(p, "must be host:port such as 192.168.0.1:443, got %q", s)
		return false
	}
	ok := true
	if !validHost(h) {
		v.add(p, "host %q is neither an IP address nor a DNS name", h)
		ok = false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(p, "port %q must be between 1 and 65535", port)
		ok = false
	}
	return ok
}

func (v *validator) hostOrHostPort(p, s string) {
	if _, _, err := net.SplitHostPort(s); err == nil {
		v.hostPort(p, s)
		return
	}
	if !validHost(s) {
		v.add(p, "must be a host or host:port, got %q", s)
	}
}
