package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/logbuf"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", "--config", "../../config/samples/registry.yaml")
	if code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("sample: code %d, out %q, err %q", code, out, errOut)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	sample, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.NewReplacer("port: 22", "port: 70000", "keyAlgorithm: ECDSA-P256", "keyAlgorithm: DSA",
		"id: /registry\n", "id: registry\n").Replace(string(sample))
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "validate", "--config", bad)
	if code != 1 {
		t.Fatalf("invalid file: exit %d, want 1", code)
	}
	for _, want := range []string{"spec.nodes.ssh.port: ", "spec.tls.keyAlgorithm: ", "spec.app.id: "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	t.Setenv("REGISTRY_OPERATOR_CONFIG", "../../config/samples/registry.yaml")
	if code, _, e := runCLI(t, "validate"); code != 0 {
		t.Errorf("config from the environment: exit %d: %s", code, e)
	}
	t.Setenv("REGISTRY_OPERATOR_CONFIG", "")
	if code, _, e := runCLI(t, "validate"); code != 1 || !strings.Contains(e, "--config") {
		t.Errorf("no config: exit %d: %s", code, e)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, e := runCLI(t, "apply"); code != 1 || !strings.Contains(e, "unknown command") {
		t.Errorf("exit %d: %s", code, e)
	}
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "registry-operator ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// tlsOnly is a spec that needs no cluster: certificates in a temp dir.
func tlsOnly(dir, interval string) string {
	return fmt.Sprintf(`apiVersion: registry-operator/v1alpha1
kind: Registry
metadata: {name: registry}
spec:
  registry: {address: "registry.example:5000", ipAddresses: [127.0.0.1]}
  tls: {stateDir: %s}
  reconcile: {interval: %s}
`, filepath.Join(dir, "state"), interval)
}

func TestPlanExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(cfg, []byte(tlsOnly(dir, "60s")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "plan", "--config", cfg)
	if !strings.Contains(out, "Plan for registry") {
		t.Fatalf("no plan printed (exit %d):\n%s\n%s", code, out, errOut)
	}
	if code == 1 {
		t.Fatalf("plan failed:\n%s\n%s", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "ca.key")); err == nil {
		t.Fatal("plan wrote to the state dir")
	}
}

func TestPlanSampleReportsUnreachableAsErrors(t *testing.T) {
	sample, err := os.ReadFile("../../config/samples/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "registry.yaml")
	spec := strings.Replace(string(sample), "stateDir: /var/lib/registry-operator", "stateDir: "+dir+"/state", 1)
	if err := os.WriteFile(cfg, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "plan", "--config", cfg, "--timeout", "60s")
	if !strings.Contains(out, "Plan for registry") || !strings.Contains(out, "Certificates:") {
		t.Fatalf("no readable plan (exit %d):\n%s\n%s", code, out, errOut)
	}
	if code != 1 && code != 2 {
		t.Errorf("exit %d, want 1 (errors) or 2 (changes)", code)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunServesAndSurvivesEdits runs the real binary: it starts, serves
// /metrics and /healthz, survives a bad and a good edit of its config,
// rejects an edit of leaderElection (which needs a restart), and stops
// cleanly on SIGTERM.
func TestRunServesAndSurvivesEdits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "registry-operator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(cfg, []byte(tlsOnly(dir, "60s")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var logs logbuf.Buffer // written by exec's copier while the test reads it
	cmd := exec.Command(bin, "run", "--config", cfg, "--listen", addr)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	base := "http://" + addr

	waitFor(t, "/healthz", func() bool { c, _ := get(base + "/healthz"); return c == 200 })
	metric := func(name string) string {
		_, body := get(base + "/metrics")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, name+" ") {
				return strings.TrimPrefix(l, name+" ")
			}
		}
		return ""
	}
	if v := metric("registry_operator_config_last_reload_successful"); v != "1" {
		t.Fatalf("config_last_reload_successful = %q", v)
	}

	if err := os.WriteFile(cfg, []byte(strings.Replace(tlsOnly(dir, "60s"), "stateDir", "stateDri", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bad edit rejected", func() bool { return metric("registry_operator_config_last_reload_successful") == "0" })
	code, out, _ := runCLI(t, "status", "--addr", addr)
	if !strings.Contains(out, "last reload REJECTED") || (code != 0 && code != 1) {
		t.Errorf("status does not show the rejected edit (exit %d):\n%s", code, out)
	}
	if !strings.Contains(logs.String(), "spec.tls.stateDri") {
		t.Errorf("log does not name the bad field:\n%s", logs.String())
	}
	if c, _ := get(base + "/healthz"); c != 200 {
		t.Fatal("operator unhealthy after a bad edit")
	}

	if err := os.WriteFile(cfg, []byte(tlsOnly(dir, "90s")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "good edit applied", func() bool { return metric("registry_operator_config_last_reload_successful") == "1" })

	// Turning leader election on is refused at runtime, like an invalid edit.
	withElection := tlsOnly(dir, "90s") + "  leaderElection: {zookeeper: [\"127.0.0.1:1\"], stateStore: sharedDir}\n"
	if err := os.WriteFile(cfg, []byte(withElection), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leaderElection edit rejected", func() bool {
		return metric("registry_operator_config_last_reload_successful") == "0"
	})
	const restart = "restart the operator to change leader election"
	if _, body := get(base + "/api/status"); !strings.Contains(body, "spec.leaderElection") || !strings.Contains(body, restart) {
		t.Errorf("/api/status does not say the leaderElection edit needs a restart:\n%s", body)
	}
	if _, out, _ := runCLI(t, "status", "--addr", addr); !strings.Contains(out, "last reload REJECTED") ||
		!strings.Contains(out, restart) {
		t.Errorf("status does not show the rejected leaderElection edit:\n%s", out)
	}
	if !strings.Contains(logs.String(), "spec.leaderElection") {
		t.Errorf("log does not name spec.leaderElection:\n%s", logs.String())
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("did not stop within the grace period after SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged:\n%s", logs.String())
	}
}

// --config naming a FIFO, a device or a directory is an error, never a
// hang: a FIFO blocks open(2) until a writer appears.
func TestConfigNotRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Release a reader the code under test may have left blocked.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	cases := map[string]string{fifo: "named pipe", "/dev/zero": "device", dir: "directory"}
	for path, what := range cases {
		for _, cmd := range []string{"validate", "plan", "run"} {
			t.Run(cmd+" "+what, func(t *testing.T) {
				type result struct {
					code   int
					stderr string
				}
				done := make(chan result, 1)
				args := []string{cmd, "--config", path}
				if cmd == "run" {
					args = append(args, "--once")
				}
				go func() {
					var o, e bytes.Buffer
					code := run(args, &o, &e)
					done <- result{code, e.String()}
				}()
				select {
				case r := <-done:
					if r.code != 1 || !strings.Contains(r.stderr, what) || !strings.Contains(r.stderr, "not a regular file") {
						t.Fatalf("exit %d, stderr %q; want 1 and a message naming the %s", r.code, r.stderr, what)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("%s --config %s hangs", cmd, path)
				}
			})
		}
	}
}

// Heap profile sampling is off unless REGISTRY_OPERATOR_MEMPROFILE asks
// for a profile: the runtime's table of sampled stacks is resident memory
// nothing reads.
func TestHeapSamplingOffUnlessProfiled(t *testing.T) {
	want := 0
	if os.Getenv(envMemProfile) != "" {
		want = 64 << 10
	}
	if runtime.MemProfileRate != want {
		t.Fatalf("runtime.MemProfileRate = %d, want %d (%s=%q)", runtime.MemProfileRate, want, envMemProfile, os.Getenv(envMemProfile))
	}
}
