//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(4, "server-cert-rotation", serverCertRotation) }

// serverCertRotation: a new server certificate (first because the config's
// duration changed, then because its renewal time came) is placed on the
// registry's agent, the registry is restarted and serves it, and images
// pushed before are still pulled afterwards. The config is restored at
// the end, which rotates once more.
func serverCertRotation(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	pushPull(t, sb, 1, 2, "e2e/rotation:before")
	orig, err := sb.Spec()
	if err != nil {
		t.Fatal(err)
	}
	origServer := orig.Spec.TLS.Server

	serial0 := servedSerial(t, sb, ctx)
	task0 := registryTask(t, sb)
	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		r.Spec.TLS.Server.Duration = v1alpha1.D(3 * time.Minute)
		r.Spec.TLS.Server.RenewBefore = v1alpha1.D(150 * time.Second)
	}); err != nil {
		t.Fatal(err)
	}
	// Reissue (duration changed), placement, restart, health: a few intervals.
	leaf1 := waitServed(t, sb, 90*time.Second, "a certificate for the new 3m duration", serial0, task0)
	if life := leaf1.NotAfter.Sub(leaf1.NotBefore); life < 3*time.Minute || life > 10*time.Minute {
		sb.Fail(t, "a server certificate valid for 3m (plus the issuer's backdating)", life.String())
	}
	sb.Eventually(t, within(sb), "registry_operator_certificate_expiration_timestamp_seconds{cert=\"server\"} is the served NotAfter",
		metricIs(sb, float64(leaf1.NotAfter.Unix()), "registry_operator_certificate_expiration_timestamp_seconds", "cert", "server"))
	pull(t, sb, 2, "e2e/rotation:before")
	pushPull(t, sb, 2, 1, "e2e/rotation:after-1")

	// The renewal time (NotAfter - 2m30s) comes about 30s after issuance.
	serial1, task1 := pki.Serial(leaf1), registryTask(t, sb)
	renewAt := leaf1.NotAfter.Add(-150 * time.Second)
	t.Logf("server certificate %s renews at %s (in %s)", serial1, renewAt.Format(time.TimeOnly), time.Until(renewAt).Round(time.Second))
	waitServed(t, sb, time.Until(renewAt)+90*time.Second, "the renewed certificate (renewal time reached)", serial1, task1)
	pull(t, sb, 1, "e2e/rotation:before")

	// Back to the original lifetime: one more rotation, then a quiet cluster.
	serial2, task2 := servedSerial(t, sb, ctx), registryTask(t, sb)
	if err := sb.EditConfig(func(r *v1alpha1.Registry) { r.Spec.TLS.Server = origServer }); err != nil {
		t.Fatal(err)
	}
	leaf3 := waitServed(t, sb, 90*time.Second, "a certificate for the original duration "+origServer.Duration.String(), serial2, task2)
	if want := origServer.Duration.Duration; math.Abs(float64(leaf3.NotAfter.Sub(leaf3.NotBefore)-want)) > float64(time.Hour) {
		sb.Fail(t, "a server certificate valid for "+want.String(), leaf3.NotAfter.Sub(leaf3.NotBefore).String())
	}
	ready(t, sb)
	pushPull(t, sb, 1, 2, "e2e/rotation:after-2")
}

// waitServed waits until the registry serves a certificate other than
// oldSerial that is the one in the state dir and on the registry's agent,
// from a task other than oldTask (the registry was restarted for it), and
// the operator's probe reports it. It returns that certificate.
func waitServed(t *testing.T, sb *sandbox.Sandbox, timeout time.Duration, what, oldSerial, oldTask string) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	sb.Eventually(t, timeout, what+": served by a restarted registry (not serial "+oldSerial+", not task "+oldTask+"), placed, and probed",
		check(func(ctx context.Context) error {
			served, err := sb.ServedCert(ctx)
			if err != nil {
				return err
			}
			serial := pki.Serial(served)
			if serial == oldSerial {
				return fmt.Errorf("still serves %s", serial)
			}
			chain, err := os.ReadFile(filepath.Join(sb.StateDir(), "tls.crt"))
			if err != nil {
				return err
			}
			certs := pemCerts(chain)
			if len(certs) == 0 || !bytes.Equal(certs[0].Raw, served.Raw) {
				return fmt.Errorf("serves %s, which is not tls.crt of the state dir", serial)
			}
			placed, err := sb.RegistryAgent().ReadFile(ctx, filepath.Join(sb.CertsDir(), "tls.crt"))
			if err != nil || !bytes.Equal(placed, chain) {
				return fmt.Errorf("tls.crt on the registry's agent differs from the state dir (err=%v)", err)
			}
			app, _, err := sb.App(sandbox.AppID)
			if err != nil {
				return err
			}
			if len(app.Tasks) != 1 || app.Tasks[0].ID == oldTask || !app.Tasks[0].Healthy() {
				return fmt.Errorf("registry tasks %+v; want one healthy task other than %s", app.Tasks, oldTask)
			}
			st, err := sb.Status(ctx)
			if err != nil {
				return err
			}
			if !st.Probe.Success || st.Probe.Serial != serial {
				return fmt.Errorf("probe success=%v serial=%s error=%q; want success for %s", st.Probe.Success, st.Probe.Serial, st.Probe.Error, serial)
			}
			leaf = served
			return nil
		}))
	return leaf
}

func servedSerial(t *testing.T, sb *sandbox.Sandbox, ctx context.Context) string {
	t.Helper()
	s, err := sb.ServedSerial(ctx)
	if err != nil {
		sb.Fail(t, "the registry serves TLS on "+sb.RegistryAddress, err.Error())
	}
	return s
}

func registryTask(t *testing.T, sb *sandbox.Sandbox) string {
	t.Helper()
	app, ok, err := sb.App(sandbox.AppID)
	if err != nil || !ok || len(app.Tasks) != 1 {
		sb.Fail(t, "one registry task", fmt.Sprintf("ok=%v err=%v tasks=%+v", ok, err, app.Tasks))
	}
	return app.Tasks[0].ID
}

func pull(t *testing.T, sb *sandbox.Sandbox, agent int, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := sb.Pull(ctx, agent, ref); err != nil {
		sb.Fail(t, fmt.Sprintf("skopeo pull of %s on agent %d succeeds", ref, agent), err.Error())
	}
}
