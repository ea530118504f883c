package v1alpha1

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func sample(t testing.TB) *Registry {
	t.Helper()
	data, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(data)
	if err != nil {
		t.Fatalf("sample does not decode: %v", err)
	}
	return r
}

func TestSampleValidates(t *testing.T) {
	r, err := Load("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatalf("sample must validate: %v", err)
	}
	if got := r.Spec.Nodes.SSH.User; got != "core" {
		t.Errorf("ssh.user = %q", got)
	}
	if !r.Spec.TrustEnabled() || !r.Spec.ConntrackEnabled() || !r.Spec.AppEnabled() || r.Spec.UIEnabled() {
		t.Errorf("enabled sections wrong: trust=%v conntrack=%v app=%v ui=%v",
			r.Spec.TrustEnabled(), r.Spec.ConntrackEnabled(), r.Spec.AppEnabled(), r.Spec.UIEnabled())
	}
}

func TestBadSpecs(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := map[string]struct {
		mutate func(s *Spec, r *Registry)
		path   string
		reason string
	}{
		"wrong apiVersion":         {func(s *Spec, r *Registry) { r.APIVersion = "v1" }, "apiVersion", "must be"},
		"wrong kind":               {func(s *Spec, r *Registry) { r.Kind = "Registri" }, "kind", "must be"},
		"bad metadata name":        {func(s *Spec, r *Registry) { r.Metadata.Name = "My Registry" }, "metadata.name", "lower-case"},
		"no marathon urls":         {func(s *Spec, r *Registry) { s.Marathon.URLs = nil }, "spec.marathon.urls", "at least one"},
		"marathon url not http":    {func(s *Spec, r *Registry) { s.Marathon.URLs = []string{"marathon.mesos:8080"} }, "spec.marathon.urls[0]", "http(s) URL"},
		"marathon timeout garbage": {func(s *Spec, r *Registry) { s.Marathon.Timeout = Duration{Raw: "10 seconds"} }, "spec.marathon.timeout", "not a duration"},
		"basic auth and token": {func(s *Spec, r *Registry) {
			s.Marathon.BasicAuth = &BasicAuth{Username: "a", PasswordFile: "/p"}
			s.Marathon.DCOSTokenFile = "/t"
		}, "spec.marathon.dcosTokenFile", "cannot be combined"},
		"relative password file": {func(s *Spec, r *Registry) { s.Marathon.BasicAuth = &BasicAuth{Username: "a", PasswordFile: "p"} }, "spec.marathon.basicAuth.passwordFile", "absolute"},
		"mesos url bad":          {func(s *Spec, r *Registry) { s.Nodes.Mesos.URL = "ftp://x" }, "spec.nodes.mesos.url", "http(s) URL"},
		"no agent source":        {func(s *Spec, r *Registry) { s.Nodes.Mesos = nil }, "spec.nodes", "names no agents"},
		"static host injection":  {func(s *Spec, r *Registry) { s.Nodes.Static = []string{"a;rm -rf /"} }, "spec.nodes.static[0]", "host or host:port"},
		"static bad port":        {func(s *Spec, r *Registry) { s.Nodes.Static = []string{"ok", "10.0.0.1:99999"} }, "spec.nodes.static[1]", "port"},
		"ssh user shell":         {func(s *Spec, r *Registry) { s.Nodes.SSH.User = "core$(id)" }, "spec.nodes.ssh.user", "POSIX user"},
		"ssh port":               {func(s *Spec, r *Registry) { s.Nodes.SSH.Port = 70000 }, "spec.nodes.ssh.port", "between 1 and 65535"},
		"ssh relative key":       {func(s *Spec, r *Registry) { s.Nodes.SSH.PrivateKeyFile = "id_ed25519" }, "spec.nodes.ssh.privateKeyFile", "absolute"},
		"ssh no known hosts":     {func(s *Spec, r *Registry) { s.Nodes.SSH.KnownHostsFile = "" }, "spec.nodes.ssh.knownHostsFile", "required"},
		"host key policy":        {func(s *Spec, r *Registry) { s.Nodes.SSH.HostKeyPolicy = "insecure" }, "spec.nodes.ssh.hostKeyPolicy", "strict | acceptNew"},
		"concurrency zero":       {func(s *Spec, r *Registry) { s.Nodes.SSH.Concurrency = -1 }, "spec.nodes.ssh.concurrency", "between 1"},
		"command timeout":        {func(s *Spec, r *Registry) { s.Nodes.SSH.CommandTimeout = Duration{Raw: "soon"} }, "spec.nodes.ssh.commandTimeout", "not a duration"},
		"address no port":        {func(s *Spec, r *Registry) { s.Registry.Address = "192.168.0.1" }, "spec.registry.address", "host:port"},
		"address bad host":       {func(s *Spec, r *Registry) { s.Registry.Address = "bad host:443" }, "spec.registry.address", "neither an IP"},
		"dns name bad":           {func(s *Spec, r *Registry) { s.Registry.DNSNames = []string{"ok.example", "under_score!"} }, "spec.registry.dnsNames[1]", "not a DNS name"},
		"ip bad":                 {func(s *Spec, r *Registry) { s.Registry.IPAddresses = []string{"192.168.0.300"} }, "spec.registry.ipAddresses[0]", "not an IP"},
		"registry missing":       {func(s *Spec, r *Registry) { s.Registry = nil }, "spec.registry", "required"},
		"tls mode":               {func(s *Spec, r *Registry) { s.TLS.Mode = "letsencrypt" }, "spec.tls.mode", "selfSigned | provided | insecure"},
		"state dir relative":     {func(s *Spec, r *Registry) { s.TLS.StateDir = "var/lib/x" }, "spec.tls.stateDir", "absolute"},
		"state dir dotdot":       {func(s *Spec, r *Registry) { s.TLS.StateDir = "/var/lib/../x" }, "spec.tls.stateDir", "clean path"},
		"state dir space":        {func(s *Spec, r *Registry) { s.TLS.StateDir = "/var/lib/my dir" }, "spec.tls.stateDir", "may only hold"},
		"key algorithm":          {func(s *Spec, r *Registry) { s.TLS.KeyAlgorithm = "RSA-1024" }, "spec.tls.keyAlgorithm", "must be one of"},
		"renewBefore >= duration": {func(s *Spec, r *Registry) {
			s.TLS.Server.RenewBefore = D(3000 * time.Hour)
		}, "spec.tls.server.renewBefore", "shorter than duration"},
		"ca duration garbage": {func(s *Spec, r *Registry) { s.TLS.CA.Duration = Duration{Raw: "10y"} }, "spec.tls.ca.duration", "not a duration"},
		"server outlives ca":  {func(s *Spec, r *Registry) { s.TLS.Server.Duration = D(90000 * time.Hour) }, "spec.tls.server.duration", "outlive"},
		"provided missing":    {func(s *Spec, r *Registry) { s.TLS.Mode = TLSProvided }, "spec.tls.provided", "required when mode is provided"},
		"provided relative": {func(s *Spec, r *Registry) {
			s.TLS.Mode = TLSProvided
			s.TLS.Provided = &ProvidedCert{CertFile: "c", KeyFile: "/k", CAFile: "/ca"}
		}, "spec.tls.provided.certFile", "absolute"},
		"certs dir injection":    {func(s *Spec, r *Registry) { s.Trust.CertsDirs = []string{"/etc/docker/certs.d;reboot"} }, "spec.trust.certsDirs[0]", "may only hold"},
		"runtime unknown":        {func(s *Spec, r *Registry) { s.Trust.Runtimes = []string{"docker", "cri-o"} }, "spec.trust.runtimes[1]", "must be one of"},
		"runtime twice":          {func(s *Spec, r *Registry) { s.Trust.Runtimes = []string{"docker", "docker"} }, "spec.trust.runtimes[1]", "twice"},
		"persist file relative":  {func(s *Spec, r *Registry) { s.Conntrack.PersistFile = "90.conf" }, "spec.conntrack.persistFile", "absolute"},
		"app id relative":        {func(s *Spec, r *Registry) { s.App.ID = "registry" }, "spec.app.id", "absolute Marathon app id"},
		"app id upper":           {func(s *Spec, r *Registry) { s.App.ID = "/Registry" }, "spec.app.id", "lower-case"},
		"image empty":            {func(s *Spec, r *Registry) { s.App.Image = "registry 2" }, "spec.app.image", "Docker image"},
		"instances negative":     {func(s *Spec, r *Registry) { n := -1; s.App.Instances = &n }, "spec.app.instances", "negative"},
		"cpus zero":              {func(s *Spec, r *Registry) { s.App.CPUs = -0.1 }, "spec.app.cpus", "greater than 0"},
		"constraint short":       {func(s *Spec, r *Registry) { s.App.Constraints = [][]string{{"hostname"}} }, "spec.app.constraints[0]", "[field, OPERATOR]"},
		"constraint operator":    {func(s *Spec, r *Registry) { s.App.Constraints = [][]string{{"hostname", "like", "x"}} }, "spec.app.constraints[0][1]", "must be one of"},
		"constraint like no val": {func(s *Spec, r *Registry) { s.App.Constraints = [][]string{{"hostname", "LIKE"}} }, "spec.app.constraints[0]", "needs a value"},
		"constraint regex":       {func(s *Spec, r *Registry) { s.App.Constraints = [][]string{{"hostname", "LIKE", "a(b"}} }, "spec.app.constraints[0][2]", "regular expression"},
		"unique with value":      {func(s *Spec, r *Registry) { s.App.Constraints = [][]string{{"hostname", "UNIQUE", "x"}} }, "spec.app.constraints[0][2]", "takes no value"},
		"container port":         {func(s *Spec, r *Registry) { s.App.ContainerPort = 0; s.App.ContainerPort = -5 }, "spec.app.containerPort", "between 1 and 65535"},
		"vip not host port":      {func(s *Spec, r *Registry) { s.App.VIP = "192.168.0.1" }, "spec.app.vip", "host:port"},
		"certs host path":        {func(s *Spec, r *Registry) { s.App.CertsHostPath = "/etc/$(x)" }, "spec.app.certsHostPath", "may only hold"},
		"env name":               {func(s *Spec, r *Registry) { s.App.Env = map[string]string{"BAD-NAME": "x"} }, "spec.app.env.BAD-NAME", "environment variable"},
		"reserved env":           {func(s *Spec, r *Registry) { s.App.Env = map[string]string{"REGISTRY_HTTP_TLS_KEY": "/x"} }, "spec.app.env.REGISTRY_HTTP_TLS_KEY", "set by the operator"},
		"reserved label":         {func(s *Spec, r *Registry) { s.App.Labels = map[string]string{"registry-operator/owner": "x"} }, "spec.app.labels.registry-operator/owner", "reserved"},
		"health protocol":        {func(s *Spec, r *Registry) { s.App.HealthCheck.Protocol = "UDP" }, "spec.app.healthCheck.protocol", "must be one of"},
		"health timeout":         {func(s *Spec, r *Registry) { s.App.HealthCheck.Timeout = D(2 * time.Minute) }, "spec.app.healthCheck.timeout", "shorter than interval"},
		"upgrade ratio":          {func(s *Spec, r *Registry) { s.App.UpgradeStrategy = &UpgradeStrategy{MaximumOverCapacity: f(2)} }, "spec.app.upgradeStrategy.maximumOverCapacity", "between 0 and 1"},
		"ui same id":             {func(s *Spec, r *Registry) { s.UI.ID = "/registry" }, "spec.ui.id", "must differ"},
		"interval too short":     {func(s *Spec, r *Registry) { s.Reconcile.Interval = D(100 * time.Millisecond) }, "spec.reconcile.interval", "at least 1s"},
		"mode unknown":           {func(s *Spec, r *Registry) { s.Reconcile.Mode = "dry-run" }, "spec.reconcile.mode", "enforce | report"},
		"zk no hosts": {func(s *Spec, r *Registry) {
			s.LeaderElection = &LeaderElectionSpec{Path: "/x", SessionTimeout: D(10 * time.Second), StateStore: StateStoreSharedDir}
		}, "spec.leaderElection.zookeeper", "at least one"},
		"zk path": {func(s *Spec, r *Registry) {
			s.LeaderElection = &LeaderElectionSpec{ZooKeeper: []string{"zk:2181"}, Path: "leader/", SessionTimeout: D(10 * time.Second), StateStore: StateStoreSharedDir}
		}, "spec.leaderElection.path", "absolute znode"},
		"zk digest required": {func(s *Spec, r *Registry) {
			s.LeaderElection = &LeaderElectionSpec{ZooKeeper: []string{"zk:2181"}, Path: "/l", SessionTimeout: D(10 * time.Second), StateStore: StateStoreZooKeeper}
		}, "spec.leaderElection.digestFile", "required"},
		// Numbers that are not numbers.
		"cpus NaN":     {func(s *Spec, r *Registry) { s.App.CPUs = math.NaN() }, "spec.app.cpus", "greater than 0"},
		"cpus +Inf":    {func(s *Spec, r *Registry) { s.App.CPUs = math.Inf(1) }, "spec.app.cpus", "greater than 0"},
		"mem NaN":      {func(s *Spec, r *Registry) { s.App.Mem = math.NaN() }, "spec.app.mem", "at least 32"},
		"mem +Inf":     {func(s *Spec, r *Registry) { s.App.Mem = math.Inf(1) }, "spec.app.mem", "at least 32"},
		"ui cpus +Inf": {func(s *Spec, r *Registry) { s.UI.CPUs = math.Inf(1) }, "spec.ui.cpus", "greater than 0"},
		"ui mem NaN":   {func(s *Spec, r *Registry) { s.UI.Mem = math.NaN() }, "spec.ui.mem", "at least 32"},
		"health ratio NaN": {func(s *Spec, r *Registry) {
			s.App.UpgradeStrategy = &UpgradeStrategy{MinimumHealthCapacity: f(math.NaN())}
		}, "spec.app.upgradeStrategy.minimumHealthCapacity", "between 0 and 1"},
		"over ratio +Inf": {func(s *Spec, r *Registry) {
			s.App.UpgradeStrategy = &UpgradeStrategy{MaximumOverCapacity: f(math.Inf(1))}
		}, "spec.app.upgradeStrategy.maximumOverCapacity", "between 0 and 1"},
		"ca common name 65": {func(s *Spec, r *Registry) { s.TLS.CA.CommonName = strings.Repeat("c", 65) }, "spec.tls.ca.commonName", "at most 64"},
		"server cn 65":      {func(s *Spec, r *Registry) { s.TLS.Server.CommonName = strings.Repeat("s", 65) }, "spec.tls.server.commonName", "at most 64"},
		"server cn from long host": {func(s *Spec, r *Registry) {
			s.Registry.Address = strings.Repeat("a", 40) + "." + strings.Repeat("b", 40) + ":5000"
			s.TLS.Server.CommonName = ""
			s.App.VIP = ""
			Default(r)
		}, "spec.tls.server.commonName", "defaults to the registry host"},
		// Target paths outside the directories they belong to.
		"persist file elsewhere":   {func(s *Spec, r *Registry) { s.Conntrack.PersistFile = "/etc/passwd" }, "spec.conntrack.persistFile", "directly in /etc/sysctl.d"},
		"persist file nested":      {func(s *Spec, r *Registry) { s.Conntrack.PersistFile = "/etc/sysctl.d/x/90.conf" }, "spec.conntrack.persistFile", "directly in /etc/sysctl.d"},
		"persist file the dir":     {func(s *Spec, r *Registry) { s.Conntrack.PersistFile = "/etc/sysctl.d/" }, "spec.conntrack.persistFile", "directly in /etc/sysctl.d"},
		"persist file not conf":    {func(s *Spec, r *Registry) { s.Conntrack.PersistFile = "/etc/sysctl.d/90-ro" }, "spec.conntrack.persistFile", ".conf file"},
		"modules file elsewhere":   {func(s *Spec, r *Registry) { s.Conntrack.ModulesLoadFile = "/etc/sysctl.d/m.conf" }, "spec.conntrack.modulesLoadFile", "directly in /etc/modules-load.d"},
		"modules file in usr":      {func(s *Spec, r *Registry) { s.Conntrack.ModulesLoadFile = "/usr/lib/modules-load.d/m.conf" }, "spec.conntrack.modulesLoadFile", "directly in /etc/modules-load.d"},
		"certs dir root":           {func(s *Spec, r *Registry) { s.Trust.CertsDirs = []string{"/"} }, "spec.trust.certsDirs[0]", "must not be /"},
		"certs dir etc":            {func(s *Spec, r *Registry) { s.Trust.CertsDirs = []string{"/etc/docker/certs.d", "/etc"} }, "spec.trust.certsDirs[1]", "must not be /etc"},
		"certs dir usr slash":      {func(s *Spec, r *Registry) { s.Trust.CertsDirs = []string{"/usr/"} }, "spec.trust.certsDirs[0]", "must not be /usr"},
		"ucr certs dir var":        {func(s *Spec, r *Registry) { s.Trust.UCRCertsDir = "/var" }, "spec.trust.ucrCertsDir", "must not be /var"},
		"ucr certs dir tmp":        {func(s *Spec, r *Registry) { s.Trust.UCRCertsDir = "/tmp/" }, "spec.trust.ucrCertsDir", "must not be /tmp"},
		"state dir root":           {func(s *Spec, r *Registry) { s.TLS.StateDir = "/" }, "spec.tls.stateDir", "shared directory /:"},
		"state dir etc":            {func(s *Spec, r *Registry) { s.TLS.StateDir = "/etc" }, "spec.tls.stateDir", "shared directory /etc"},
		"state dir tmp slash":      {func(s *Spec, r *Registry) { s.TLS.StateDir = "/tmp/" }, "spec.tls.stateDir", "shared directory /tmp"},
		"state dir var lib":        {func(s *Spec, r *Registry) { s.TLS.StateDir = "/var/lib" }, "spec.tls.stateDir", "shared directory /var/lib"},
		"state dir home":           {func(s *Spec, r *Registry) { s.TLS.StateDir = "/home" }, "spec.tls.stateDir", "shared directory /home"},
		"state dir dotdot to root": {func(s *Spec, r *Registry) { s.TLS.StateDir = "/var/.." }, "spec.tls.stateDir", "clean path"},
		// Credentials in URLs.
		"marathon url credentials": {func(s *Spec, r *Registry) { s.Marathon.URLs = []string{"http://admin:hunter2@marathon.mesos:8080"} }, "spec.marathon.urls[0]", "spec.marathon.basicAuth.passwordFile"},
		"marathon url user only":   {func(s *Spec, r *Registry) { s.Marathon.URLs = []string{"http://a:8080", "https://tok3n@m:8443"} }, "spec.marathon.urls[1]", "must not carry credentials"},
		"mesos url credentials":    {func(s *Spec, r *Registry) { s.Nodes.Mesos.URL = "http://u:hunter2@leader.mesos:5050" }, "spec.nodes.mesos.url", "must not carry credentials"},
		// The certs.d host rule.
		"address trailing dot": {func(s *Spec, r *Registry) { s.Registry.Address = "registry.local.:5000" }, "spec.registry.address", `write "registry.local:5000"`},
	}
	if len(tests) < 25 {
		t.Fatalf("want at least 25 bad specs, have %d", len(tests))
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := sample(t)
			Default(r)
			tc.mutate(&r.Spec, r)
			errs := Validate(r)
			if hasFieldError(errs, tc.path, tc.reason) {
				return
			}
			t.Fatalf("want an error at %s containing %q, got:\n%v", tc.path, tc.reason, errs)
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	r := sample(t)
	Default(r)
	r.Spec.Nodes.SSH.Port = 0
	r.Spec.TLS.KeyAlgorithm = "DSA"
	r.Spec.App.ID = "x"
	errs := Validate(r)
	paths := map[string]bool{}
	for _, e := range errs {
		paths[e.Path] = true
	}
	for _, p := range []string{"spec.nodes.ssh.port", "spec.tls.keyAlgorithm", "spec.app.id"} {
		if !paths[p] {
			t.Errorf("missing error for %s in %v", p, errs)
		}
	}
}

func TestDecodeUnknownFieldsNamePath(t *testing.T) {
	tests := map[string]struct{ yaml, path, reason string }{
		"misspelled ssh field": {"apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  nodes:\n    static: [a]\n    ssh:\n      usr: core\n", "spec.nodes.ssh.usr", `did you mean "user"`},
		"unknown top field":    {"apiVersion: registry-operator/v1alpha1\nkind: Registry\nspecs: {}\n", "specs", `did you mean "spec"`},
		"unknown in list item": {"apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  tls:\n    ca:\n      comonName: x\n", "spec.tls.ca.comonName", `did you mean "commonName"`},
		"inline field known":   {"apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  tls:\n    ca:\n      regenerateOnCorrupt: true\n", "spec.tls.ca.regenerateOnCorrupt", "did you mean"},
		"wrong type":           {"apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  nodes:\n    static: [a]\n    ssh:\n      port: twenty-two\n", "spec.nodes.ssh.port", "wrong type"},
		"not yaml":             {"spec: [\n", "(file)", "not valid YAML"},
		"two documents":        {"kind: Registry\n---\nkind: Registry\n", "(file)", "more than one"},
		"empty":                {"", "(file)", "empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(tc.yaml))
			fes, ok := err.(FieldErrors)
			if !ok {
				t.Fatalf("want FieldErrors, got %T %v", err, err)
			}
			for _, e := range fes {
				if e.Path == tc.path && strings.Contains(e.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("want %s: %q, got %v", tc.path, tc.reason, fes)
		})
	}
}

func TestDefaults(t *testing.T) {
	r, err := Parse([]byte("apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  registry: {address: reg.example:5000}\n  tls: {}\n"))
	if err != nil {
		t.Fatalf("a spec with only registry and tls must be valid: %v", err)
	}
	s := r.Spec
	checks := map[string][2]any{
		"tls.mode":               {s.TLS.Mode, TLSSelfSigned},
		"tls.stateDir":           {s.TLS.StateDir, DefaultStateDir},
		"tls.keyAlgorithm":       {s.TLS.KeyAlgorithm, DefaultKeyAlgorithm},
		"tls.ca.duration":        {s.TLS.CA.Duration.Duration, DefaultCADuration},
		"tls.server.renewBefore": {s.TLS.Server.RenewBefore.Duration, DefaultServerRenewBefore},
		"tls.server.commonName":  {s.TLS.Server.CommonName, "reg.example"},
		"reconcile.interval":     {s.Reconcile.Interval.Duration, DefaultInterval},
		"reconcile.mode":         {s.Reconcile.Mode, ModeEnforce},
		"metadata.name":          {r.Metadata.Name, "registry"},
	}
	for k, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %v, want %v", k, c[0], c[1])
		}
	}
	if s.TrustEnabled() || s.ConntrackEnabled() || s.AppEnabled() || s.NodesEnabled() {
		t.Errorf("absent sections must be off")
	}
	// Defaulting is idempotent.
	before := *r.Spec.TLS
	Default(r)
	if before != *r.Spec.TLS {
		t.Errorf("Default is not idempotent")
	}
}

func TestSectionDefaults(t *testing.T) {
	r, err := Parse([]byte(`apiVersion: registry-operator/v1alpha1
kind: Registry
spec:
  marathon: {urls: ["http://127.0.0.1:8080"]}
  nodes:
    static: [198.18.0.2]
    ssh: {privateKeyFile: /k, knownHostsFile: /kh}
  registry: {address: "198.18.0.2:443"}
  trust: {}
  conntrack: {enabled: false}
  app: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := r.Spec
	if !s.TrustEnabled() || s.ConntrackEnabled() || !s.AppEnabled() {
		t.Errorf("trust=%v conntrack=%v app=%v", s.TrustEnabled(), s.ConntrackEnabled(), s.AppEnabled())
	}
	if s.Nodes.SSH.User != "root" || s.Nodes.SSH.SudoEnabled() {
		t.Errorf("root without sudo by default, got user=%s sudo=%v", s.Nodes.SSH.User, s.Nodes.SSH.SudoEnabled())
	}
	if s.App.VIP != "198.18.0.2:443" || s.Marathon.Timeout.Duration != DefaultMarathonTimeout {
		t.Errorf("vip=%s timeout=%s", s.App.VIP, s.Marathon.Timeout)
	}
	if got := s.Trust.Runtimes; len(got) != 2 || got[0] != RuntimeDocker || got[1] != RuntimeUCR {
		t.Errorf("runtimes = %v", got)
	}
}

func TestWarnings(t *testing.T) {
	r, err := Parse([]byte("apiVersion: registry-operator/v1alpha1\nkind: Registry\nspec:\n  registry: {address: reg.example:5000}\n  tls: {mode: insecure}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := Warnings(r)
	if len(w) == 0 || !strings.Contains(w[0], "clear text") {
		t.Fatalf("insecure mode must warn, got %v", w)
	}
}

// hasFieldError reports whether errs holds an error at path whose reason
// contains reason.
func hasFieldError(errs FieldErrors, path, reason string) bool {
	for _, e := range errs {
		if e.Path == path && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}
