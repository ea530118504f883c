package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/status"
)

// Status reads the operator's /api/status.
func (s *Sandbox) Status(ctx context.Context) (status.Status, error) {
	return status.Fetch(ctx, s.OperatorURL())
}

// Converged is a Wait check: the operator reports everything in sync, the
// TLS probe succeeded, the registry app is healthy, and the nodes it
// reports are exactly the listed agents, each in sync. found describes
// what is not so.
func (s *Sandbox) Converged(ctx context.Context) (ok bool, found string) {
	st, err := s.Status(ctx)
	if err != nil {
		return false, err.Error()
	}
	var problems []string
	for _, it := range st.OutOfSync {
		problems = append(problems, it.String())
	}
	if !st.Certificates.Ready {
		problems = append(problems, "certificates not ready: "+st.Certificates.Reason)
	}
	if !st.Probe.Success {
		problems = append(problems, fmt.Sprintf("probe: success=false checked=%s error=%q", st.Probe.Checked.Format(time.TimeOnly), st.Probe.Error))
	}
	healthy := false
	for _, a := range st.Apps {
		if a.ID == AppID && a.InSync && a.Healthy >= a.Desired && a.Desired > 0 {
			healthy = true
		}
	}
	if !healthy {
		problems = append(problems, "app "+AppID+" not in sync and healthy: "+describeApps(st))
	}
	want := s.ListedAddresses()
	var got []string
	for _, n := range st.Nodes {
		got = append(got, n.Address)
		if n.State != status.NodeInSync {
			problems = append(problems, "node "+n.Address+" is "+n.State)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("nodes reported %v, listed agents %v", got, want))
	}
	if len(problems) > 0 {
		return false, strings.Join(problems, "\n")
	}
	return true, fmt.Sprintf("in sync: %d nodes, app healthy, probe serial %s", len(got), st.Probe.Serial)
}

func describeApps(st status.Status) string {
	var out []string
	for _, a := range st.Apps {
		out = append(out, fmt.Sprintf("%s exists=%v inSync=%v desired=%d running=%d healthy=%d diff=%v error=%q",
			a.ID, a.Exists, a.InSync, a.Desired, a.Running, a.Healthy, a.Diff, a.LastError))
	}
	if len(out) == 0 {
		return "no app reported"
	}
	return strings.Join(out, "; ")
}

// Task is a task of an app as the emulator reports it.
type Task struct {
	ID      string `json:"id"`
	Host    string `json:"host"`
	State   string `json:"state"`
	Ports   []int  `json:"ports"`
	Version string `json:"version"`
	Health  []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
}

// Healthy tells whether every health check of the task passes.
func (t Task) Healthy() bool {
	if len(t.Health) == 0 {
		return false
	}
	for _, h := range t.Health {
		if !h.Alive {
			return false
		}
	}
	return true
}

// App is the part of an emulated app the tests look at.
type App struct {
	ID        string `json:"id"`
	Instances int    `json:"instances"`
	Container struct {
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
	} `json:"container"`
	Tasks       []Task `json:"tasks"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
}

// App returns the app as the emulator holds it (ok=false: no such app).
func (s *Sandbox) App(id string) (App, bool, error) {
	raw, ok := s.Sim.App(id)
	if !ok {
		return App{}, false, nil
	}
	var a App
	if err := json.Unmarshal(raw, &a); err != nil {
		return App{}, true, fmt.Errorf("sandbox: decode app %s: %w", id, err)
	}
	return a, true, nil
}

// Marathon sends one request to the emulator's API, as a person with curl
// would (body is JSON-encoded unless it is already []byte), and returns
// the status and body.
func (s *Sandbox) Marathon(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.MarathonURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// ServedCert connects to the registry address with TLS, as a client
// would, and returns the certificate it serves (not verified: the caller
// compares it with what it expects).
func (s *Sandbox) ServedCert(ctx context.Context) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the certificate is returned for the caller to check
	c, err := d.DialContext(ctx, "tcp", s.RegistryAddress)
	if err != nil {
		return nil, fmt.Errorf("sandbox: TLS dial %s: %w", s.RegistryAddress, err)
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("sandbox: %s served no certificate", s.RegistryAddress)
	}
	return certs[0], nil
}

// ServedSerial is the serial of the certificate the registry serves, in
// the form /api/status uses (pki.Serial: upper-case hex).
func (s *Sandbox) ServedSerial(ctx context.Context) (string, error) {
	c, err := s.ServedCert(ctx)
	if err != nil {
		return "", err
	}
	return pki.Serial(c), nil
}
