package marathonsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// netnsAgent creates a network namespace reachable from the host over a
// veth pair and returns an Agent whose Enter runs commands inside it.
func netnsAgent(t *testing.T, name string) Agent {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace for the agent")
	}
	for _, bin := range []string{"ip", "/usr/bin/docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (Debian packages iproute2, docker-registry)", bin)
		}
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(60))
	octet := 190 + n.Int64()
	ns := fmt.Sprintf("msim%d-%d", os.Getpid()%10000, octet)
	host, peer := "mh"+ns[4:], "mp"+ns[4:]
	hostIP, agentIP := fmt.Sprintf("198.18.%d.1", octet), fmt.Sprintf("198.18.%d.2", octet)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", ns)
	run("addr", "add", hostIP+"/30", "dev", host)
	run("link", "set", host, "up")
	run("-n", ns, "addr", "add", agentIP+"/30", "dev", peer)
	run("-n", ns, "link", "set", peer, "up")
	run("-n", ns, "link", "set", "lo", "up")
	return Agent{Hostname: name, IP: agentIP, Enter: []string{"ip", "netns", "exec", ns}}
}

func writeServerCert(t *testing.T, dir, ip string) (*x509.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cert, pool
}

// The process executor runs the real docker-registry for a registry app on
// the agent the constraint picks, with the app's TLS env pointing through
// its hostPath volumes, and Marathon-style TCP/HTTPS health checks.
func TestProcExecRunsRegistry(t *testing.T) {
	agent := netnsAgent(t, "agent-p")
	dir := t.TempDir()
	certs, data := filepath.Join(dir, "certs"), filepath.Join(dir, "data")
	_ = os.MkdirAll(certs, 0o755)
	_ = os.MkdirAll(data, 0o755)
	cert, pool := writeServerCert(t, certs, agent.IP)

	pe := NewProcExec(ProcOptions{CheckInterval: 100 * time.Millisecond})
	sim := New(Options{Agents: []Agent{{Hostname: "other", IP: "198.18.254.9"}, agent}, Executor: pe, Tick: 20 * time.Millisecond})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { hs.CloseClientConnections(); sim.Close(); hs.Close() })

	r := do(t, hs.URL, "POST", "/v2/apps", map[string]any{
		"id": "/registry", "instances": 1, "cpus": 0.5, "mem": 256,
		"constraints": []any{[]any{"hostname", "LIKE", "agent-p"}},
		"container": map[string]any{
			"type": "DOCKER",
			"docker": map[string]any{"image": "registry:2.8", "network": "BRIDGE",
				"portMappings": []any{map[string]any{"containerPort": 5000, "hostPort": 0, "labels": map[string]any{"VIP_0": "/registry:5000"}}}},
			"volumes": []any{
				map[string]any{"containerPath": "/certs", "hostPath": certs, "mode": "RO"},
				map[string]any{"containerPath": "/var/lib/registry", "hostPath": data, "mode": "RW"},
			},
		},
		"env": map[string]any{"REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/tls.crt", "REGISTRY_HTTP_TLS_KEY": "/certs/tls.key", "REGISTRY_HTTP_SECRET": "s3cret"},
		"healthChecks": []any{
			map[string]any{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 10},
			map[string]any{"protocol": "HTTPS", "path": "/v2/", "portIndex": 0, "gracePeriodSeconds": 30},
		},
	})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	first := waitHealthy(t, hs.URL, "")

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	port := fmt.Sprint(obj(arr(obj(do(t, hs.URL, "GET", "/v2/apps/registry", nil).obj()["app"])["tasks"])[0])["ports"].([]any)[0])
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + net.JoinHostPort(agent.IP, port) + "/v2/")
	if err != nil {
		t.Fatalf("registry over TLS: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS.PeerCertificates[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("registry answered %d with serial %v", res.StatusCode, res.TLS.PeerCertificates[0].SerialNumber)
	}

	// A crashed process is a failed task: Marathon starts another one.
	if !sim.KillTask("/registry") {
		t.Fatal("no task to kill")
	}
	second := waitHealthy(t, hs.URL, first)
	if second == first {
		t.Fatal("task not replaced")
	}
	// A restart rolls the task (1/1: the new process starts next to the old).
	if r := do(t, hs.URL, "POST", "/v2/apps/registry/restart", nil); r.status != 200 {
		t.Fatalf("restart: %d %s", r.status, r.raw)
	}
	waitHealthy(t, hs.URL, second)
	port = fmt.Sprint(obj(arr(obj(do(t, hs.URL, "GET", "/v2/apps/registry", nil).obj()["app"])["tasks"])[0])["ports"].([]any)[0])
	do(t, hs.URL, "DELETE", "/v2/apps/registry", nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(agent.IP, port), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("registry still listening after the app was deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHealthy waits for one healthy task whose id differs from not.
func waitHealthy(t *testing.T, url, not string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := do(t, url, "GET", "/v2/apps/registry", nil)
		app := obj(r.obj()["app"])
		ids := taskIDs(app)
		if app["tasksHealthy"] == 1.0 && len(ids) == 1 && ids[0] != not {
			if h := obj(arr(app["tasks"])[0])["host"]; h != "agent-p" {
				t.Fatalf("task placed on %v", h)
			}
			return ids[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := do(t, url, "GET", "/v2/apps/registry", nil)
	t.Fatalf("registry never healthy: %s", r.raw)
	return ""
}
