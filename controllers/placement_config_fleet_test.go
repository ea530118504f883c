package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
	"github.com/registry-operator/registry-operator/internal/testing/registrytest"
	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// TestFleetPlacesRegistryConfig: placement writes config.yml and htpasswd
// (0600) beside the TLS files on the registry's agent only, leaves the
// htpasswd file alone while no password changes (bcrypt is salted: a new
// hash every pass would be a write every pass), rewrites it when a user's
// passwordFile changes, and the real docker-registry, run from exactly
// those files, refuses anonymous requests and takes the new password
// without a restart.
func TestFleetPlacesRegistryConfig(t *testing.T) {
	dir := t.TempDir()
	ciFile := filepath.Join(dir, "ci.password")
	must(t, os.WriteFile(ciFile, []byte("ci-password-1\n"), 0o600))
	e := newFleetEnv(t, 2, func(s *v1alpha1.Spec, _ *testfleet.Fleet) {
		s.Auth = &v1alpha1.AuthSpec{Htpasswd: &v1alpha1.HtpasswdSpec{
			Users: []v1alpha1.HtpasswdUser{{Name: "ci", PasswordFile: ciFile}}}}
	})
	p := newFleetPKI(t, e.f.Host(0).Address)
	e.store.SetPKI(p.pki)
	e.store.SetPullSecret(state.PullSecret{Ready: true, Current: state.PullUser{Name: "agents-1", Generation: 1, Password: "pull-password-1"},
		Valid: []state.PullUser{{Name: "agents-1", Generation: 1, Password: "pull-password-1"}}})
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("first pass: %v", errs)
	}
	ctx := context.Background()
	h0, h1 := e.f.Host(0), e.f.Host(1)
	certs := e.spec.App.CertsHostPath
	configPath, htpasswdPath := certs+"/"+marathon.ConfigFile, certs+"/"+marathon.HtpasswdFile
	for _, f := range []string{configPath, htpasswdPath} {
		st, err := h0.Stat(ctx, f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s on the registry's agent: %v %v", f, st, err)
		}
		if _, err := h1.Stat(ctx, f); err == nil {
			t.Errorf("%s placed on %s, which the constraints exclude", f, h1.Name)
		}
	}
	placed := e.store.RegistryConfigPlacement()
	want := configLabelHash([]byte(e.read(t, h0, configPath)), p.pki.ServerKey)
	if m := placed.Missing(want, nil); len(m) != 0 {
		t.Errorf("RegistryConfigPlacement = %+v, want %s on both (the excluded agent needs none)", placed.Nodes, want)
	}
	for _, s := range []string{"ci-password-1", "pull-password-1"} {
		if strings.Contains(e.read(t, h0, configPath), s) {
			t.Errorf("config.yml contains a password")
		}
	}

	// Steady state: the htpasswd file is not written again.
	before := inode(t, h0, htpasswdPath)
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("steady pass: %v", errs)
	}
	if after := inode(t, h0, htpasswdPath); after != before {
		t.Errorf("htpasswd rewritten on a pass that changed no password (inode %d -> %d)", before, after)
	}
	if c := nodeConcern(e, h0.Address, reconciler.Placement); !c.InSync || len(c.Changes) > 0 {
		t.Errorf("placement after a steady pass: %+v", c)
	}

	// The real registry, run from the placed files: the container's volume
	// (app.certsHostPath at /certs) becomes a path translation here.
	addr := registrytest.FreeAddr(t)
	proc := registrytest.Start(t, containerConfig(t, h0, e.read(t, h0, configPath), addr), addr)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: h0.Address, MinVersion: tls.VersionTLS12}}}
	status := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /v2/: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("", ""); got != http.StatusUnauthorized {
		t.Errorf("anonymous: %d, want 401", got)
	}
	if got := status("ci", "ci-password-1"); got != http.StatusOK {
		t.Errorf("ci: %d, want 200", got)
	}
	if got := status("agents-1", "pull-password-1"); got != http.StatusOK {
		t.Errorf("pull user: %d, want 200", got)
	}

	// A new CI password: the file changes, the registry keeps running and
	// takes it; the old password is refused.
	must(t, os.WriteFile(ciFile, []byte("ci-password-2\n"), 0o600))
	if errs := e.pass(t); len(errs) > 0 {
		t.Fatalf("pass after the password change: %v", errs)
	}
	if after := inode(t, h0, htpasswdPath); after == before {
		t.Errorf("htpasswd not rewritten after a password change")
	}
	if c := nodeConcern(e, h0.Address, reconciler.Placement); !strings.Contains(strings.Join(c.Changes, "\n"), "new password for ci") ||
		strings.Contains(strings.Join(c.Changes, "\n"), "ci-password") {
		t.Errorf("placement changes: %q", c.Changes)
	}
	if placed2 := e.store.RegistryConfigPlacement(); len(placed2.Missing(want, nil)) != 0 {
		t.Errorf("a password change changed the config hash (it would restart the registry): %+v", placed2.Nodes)
	}
	if got := status("ci", "ci-password-2"); got != http.StatusOK {
		t.Errorf("ci with the new password: %d, want 200", got)
	}
	if got := status("ci", "ci-password-1"); got != http.StatusUnauthorized {
		t.Errorf("ci with the old password: %d, want 401", got)
	}
	if n := strings.Count(proc.Log(), "listening on"); n != 1 {
		t.Errorf("the registry started %d times, want once", n)
	}

	// An empty passwordFile is an error naming the field; nothing changes.
	must(t, os.WriteFile(ciFile, nil, 0o600))
	errs := e.pass(t)
	if err := errs[reconciler.Placement+"|"+h0.Address]; err == nil || !strings.Contains(err.Error(), "spec.auth.htpasswd.users[0].passwordFile") {
		t.Errorf("empty passwordFile: %v", errs)
	}
	if got := status("ci", "ci-password-2"); got != http.StatusOK {
		t.Errorf("ci after a failed pass: %d, want 200 (the file must be left as it was)", got)
	}
}

// containerConfig writes a copy of config.yml whose container paths are
// translated to where the volumes' host paths are, and whose listen
// address is addr; it first checks the file names exactly the paths the
// app mounts.
func containerConfig(t *testing.T, h *testfleet.Host, config, addr string) string {
	t.Helper()
	var c struct {
		Storage map[string]map[string]any `yaml:"storage"`
		HTTP    struct {
			TLS map[string]string `yaml:"tls"`
		} `yaml:"http"`
		Auth map[string]map[string]string `yaml:"auth"`
	}
	must(t, yaml.Unmarshal([]byte(config), &c))
	if c.HTTP.TLS["certificate"] != "/certs/tls.crt" || c.HTTP.TLS["key"] != "/certs/tls.key" ||
		c.Auth["htpasswd"]["path"] != marathon.HtpasswdContainerPath ||
		c.Storage["filesystem"]["rootdirectory"] != marathon.DataContainerPath {
		t.Fatalf("config.yml names paths the app does not mount:\n%s", config)
	}
	hostRoot := "/proc/" + strconv.Itoa(h.HolderPID()) + "/root" + v1alpha1.DefaultCertsHostPath
	data := t.TempDir()
	r := strings.NewReplacer(marathon.CertsContainerPath+"/", hostRoot+"/", marathon.DataContainerPath, data)
	out := r.Replace(config)
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  addr: ") {
			lines[i] = "  addr: " + addr
		}
	}
	p := filepath.Join(t.TempDir(), "config.yml")
	must(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600))
	return p
}

func inode(t *testing.T, h *testfleet.Host, p string) uint64 {
	t.Helper()
	st, err := h.Stat(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func nodeConcern(e *fleetEnv, addr, name string) state.Concern {
	for _, n := range e.store.Nodes() {
		if n.Address == addr {
			return n.Concerns[name]
		}
	}
	return state.Concern{}
}
