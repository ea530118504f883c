//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(7, "bad-edits", badEdits) }

const reloadMetric = "registry_operator_config_last_reload_successful"

// badEdits: a config edit with errors is rejected as a whole (its field
// paths in the log and /api/status, the reload metric 0) and nothing on
// the cluster changes, although the edit also carried valid changes; the
// corrected edit then applies. Two kinds of errors: values that fail
// validation, and a misspelt field that strict loading refuses.
func badEdits(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	orig, err := sb.ConfigYAML()
	if err != nil {
		t.Fatal(err)
	}
	spec, err := sb.Spec()
	if err != nil {
		t.Fatal(err)
	}
	origMem := spec.Spec.App.Mem
	newMem := origMem + 32
	// The valid part of every edit below: conntrack off (every agent's
	// sysctl and persist file would change) and more memory for the
	// registry (a Marathon write and a restart).
	change := func(r *v1alpha1.Registry) {
		off := false
		r.Spec.Conntrack.TCPBeLiberal = &off
		r.Spec.App.Mem = newMem
	}
	corrected := edited(t, orig, change)
	if !bytes.Contains(corrected, []byte("tcpBeLiberal: false")) {
		t.Fatalf("the corrected edit has no tcpBeLiberal: false line:\n%s", corrected)
	}
	bad := []struct {
		what  string
		yaml  []byte
		paths []string
	}{
		{"values that fail validation", edited(t, orig, func(r *v1alpha1.Registry) {
			change(r)
			r.Spec.TLS.KeyAlgorithm = "DSA-1024"
			r.Spec.Reconcile.Interval = v1alpha1.D(100 * time.Millisecond)
			r.Spec.App.CPUs = -1
		}), []string{"spec.tls.keyAlgorithm", "spec.reconcile.interval", "spec.app.cpus"}},
		{"a misspelt field", bytes.Replace(corrected, []byte("tcpBeLiberal: false"), []byte("tcpBeLiberl: false"), 1),
			[]string{"spec.conntrack.tcpBeLiberl"}},
	}

	before := snapshotCluster(t, sb, spec)
	for _, b := range bad {
		mark := sb.LogSize()
		writes := len(sb.Sim.Writes())
		if err := sb.WriteConfig(b.yaml); err != nil {
			t.Fatal(err)
		}
		edited := time.Now()
		sb.Eventually(t, 30*time.Second, "the edit with "+b.what+" is rejected: "+reloadMetric+" 0 and /api/status names "+strings.Join(b.paths, ", "),
			check(func(ctx context.Context) error {
				m, err := sb.Metrics(ctx)
				if err != nil {
					return err
				}
				if v, ok := m.Get(reloadMetric); !ok || v != 0 {
					return fmt.Errorf("%s", m.Describe(reloadMetric))
				}
				st, err := sb.Status(ctx)
				if err != nil {
					return err
				}
				for _, p := range b.paths {
					if !strings.Contains(st.Config.LastReloadError, p) {
						return fmt.Errorf("/api/status config.lastReloadError %q does not name %s", st.Config.LastReloadError, p)
					}
				}
				return nil
			}))
		sb.Eventually(t, 10*time.Second, "the operator log names "+strings.Join(b.paths, ", "), check(func(context.Context) error {
			log, err := sb.LogSince(mark)
			if err != nil {
				return err
			}
			for _, p := range b.paths {
				if !bytes.Contains(log, []byte(p)) {
					return fmt.Errorf("no %s in the log since the edit:\n%s", p, tail(log, 10))
				}
			}
			return nil
		}))
		// Two full passes of every reconciler with the bad file on disk.
		waitPasses(t, sb, 2, "trust", "conntrack", "app")
		if d := 2*sb.Interval() - time.Since(edited); d > 0 {
			time.Sleep(d)
		}
		if w := sb.Sim.Writes(); len(w) != writes {
			sb.Fail(t, "no Marathon write after the rejected edit", describeWrites(w[writes:]))
		}
		if diff := before.diff(snapshotCluster(t, sb, spec)); diff != "" {
			sb.Fail(t, "nothing on the agents or in Marathon changes after the edit with "+b.what, diff)
		}
		if v, _ := metrics(t, sb).Get(reloadMetric); v != 0 {
			sb.Fail(t, reloadMetric+" stays 0 while the bad file is on disk", fmt.Sprint(v))
		}
	}

	// The corrected edit applies: conntrack off everywhere, the new memory in Marathon.
	if err := sb.WriteConfig(corrected); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, 30*time.Second, "the corrected edit is loaded: "+reloadMetric+" 1", metricIs(sb, 1, reloadMetric))
	sb.Eventually(t, within(sb), fmt.Sprintf("every agent has %s=0 and app %s has mem %g in Marathon", sandbox.ConntrackKey, sandbox.AppID, newMem),
		check(func(ctx context.Context) error {
			for _, h := range sb.Agents() {
				if v, err := h.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "0" {
					return fmt.Errorf("%s: %s=%q err=%v", h.Name, sandbox.ConntrackKey, v, err)
				}
			}
			if a := appDef(t, sb); a.Mem != newMem {
				return fmt.Errorf("app mem %g", a.Mem)
			}
			return nil
		}))
	st, err := sb.Status(context.Background())
	if err != nil || st.Config.LastReloadError != "" {
		sb.Fail(t, "/api/status shows no reload error after the corrected edit", fmt.Sprintf("%q, err=%v", st.Config.LastReloadError, err))
	}
	ready(t, sb)

	// Back to the original config.
	if err := sb.WriteConfig(orig); err != nil {
		t.Fatal(err)
	}
	sb.Eventually(t, within(sb), fmt.Sprintf("every agent back to %s=1 and app mem %g", sandbox.ConntrackKey, origMem),
		check(func(ctx context.Context) error {
			for _, h := range sb.Agents() {
				if v, err := h.Sysctl(ctx, sandbox.ConntrackKey); err != nil || v != "1" {
					return fmt.Errorf("%s: %s=%q err=%v", h.Name, sandbox.ConntrackKey, v, err)
				}
			}
			if a := appDef(t, sb); a.Mem != origMem {
				return fmt.Errorf("app mem %g", a.Mem)
			}
			return nil
		}))
	ready(t, sb)
}

// edited returns the config yaml changed by fn, without writing it.
func edited(t *testing.T, yamlDoc []byte, fn func(*v1alpha1.Registry)) []byte {
	t.Helper()
	r, err := v1alpha1.Decode(yamlDoc)
	if err != nil {
		t.Fatal(err)
	}
	fn(r)
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appDefinition is the part of the emulated app's definition the
// scenarios compare.
type appDefinition struct {
	Version   string  `json:"version"`
	Instances int     `json:"instances"`
	Mem       float64 `json:"mem"`
}

func appDef(t *testing.T, sb *sandbox.Sandbox) appDefinition {
	t.Helper()
	raw, ok := sb.Sim.App(sandbox.AppID)
	if !ok {
		sb.Fail(t, "app "+sandbox.AppID+" in Marathon", "none")
	}
	var a appDefinition
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// clusterSnapshot is what a config edit could change: files and sysctls
// on the agents, the app's definition in Marathon.
type clusterSnapshot struct {
	items map[string]string
}

func snapshotCluster(t *testing.T, sb *sandbox.Sandbox, spec *v1alpha1.Registry) clusterSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := clusterSnapshot{items: map[string]string{}}
	files := []string{sb.CAPath(), spec.Spec.Conntrack.PersistFile,
		filepath.Join(sb.CertsDir(), "tls.crt"), filepath.Join(sb.CertsDir(), "tls.key")}
	for _, h := range sb.Agents() {
		for _, f := range files {
			b, err := h.ReadFile(ctx, f)
			s.items[h.Name+":"+f] = fmt.Sprintf("%x err=%v", b, err)
		}
		v, err := h.Sysctl(ctx, sandbox.ConntrackKey)
		s.items[h.Name+":"+sandbox.ConntrackKey] = fmt.Sprintf("%s err=%v", v, err)
	}
	a := appDef(t, sb)
	s.items["marathon:"+sandbox.AppID] = fmt.Sprintf("version %s, %d instances, mem %g", a.Version, a.Instances, a.Mem)
	return s
}

// diff lists what differs from s in o ("" when nothing).
func (s clusterSnapshot) diff(o clusterSnapshot) string {
	var out []string
	for k, v := range s.items {
		if o.items[k] != v {
			out = append(out, fmt.Sprintf("%s: was %.80s, now %.80s", k, v, o.items[k]))
		}
	}
	return strings.Join(out, "\n")
}

func describeWrites(ws []marathonsim.Write) string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("%s %s %s?%s -> %d", w.Time.Format("15:04:05.000"), w.Method, w.Path, w.Query, w.Status))
	}
	return strings.Join(out, "\n")
}

// waitPasses waits until each named reconciler has finished n more
// passes (any result) of each of its keys than when it was called: one
// key per listed agent for the node reconcilers, one for the others.
func waitPasses(t *testing.T, sb *sandbox.Sandbox, n int, reconcilers ...string) {
	t.Helper()
	m0 := metrics(t, sb)
	sb.Eventually(t, time.Duration(n+1)*within(sb), fmt.Sprintf("%d more passes of %v", n, reconcilers), check(func(ctx context.Context) error {
		m, err := sb.Metrics(ctx)
		if err != nil {
			return err
		}
		for _, r := range reconcilers {
			keys := 1
			if r == "trust" || r == "conntrack" {
				keys = len(sb.Agents())
			}
			got := m.Sum("registry_operator_reconcile_total", "reconciler", r) - m0.Sum("registry_operator_reconcile_total", "reconciler", r)
			if got < float64(n*keys) {
				return fmt.Errorf("%s: %g more passes, want %d", r, got, n*keys)
			}
		}
		return nil
	}))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
