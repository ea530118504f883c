// Package controllers holds the operator's reconcilers, one per concern.
package controllers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// CertificatesKey is the one key the certificate reconciler serves.
const CertificatesKey = "tls"

// MaxCertificatesRequeue bounds how long the reconciler sleeps when nothing
// is due, so a changed clock or a file edited by hand is noticed.
const MaxCertificatesRequeue = time.Hour

// Certificates owns the CA and the registry's server certificate: it
// issues, renews and rotates them in tls.stateDir (or validates provided
// ones) and publishes the result as the cluster state's PKI slice.
type Certificates struct {
	Deps
	openStore func(*v1alpha1.Spec) pki.Store
}

// CertificatesOptions are the certificate reconciler's own options.
type CertificatesOptions struct {
	// PKIStore replaces the tls.stateDir directory store, e.g. with one
	// kept in ZooKeeper so every instance shares the state.
	PKIStore func(*v1alpha1.Spec) pki.Store
}

// NewCertificates returns the certificate reconciler.
func NewCertificates(d Deps, o CertificatesOptions) *Certificates {
	c := &Certificates{Deps: d.named(reconciler.Certificates), openStore: o.PKIStore}
	if c.openStore == nil {
		c.openStore = func(s *v1alpha1.Spec) pki.Store { return pki.NewDirStore(s.TLS.StateDir) }
	}
	return c
}

// Reconcile implements manager.Reconciler.
func (c *Certificates) Reconcile(ctx context.Context, _ string) (manager.Result, error) {
	spec := c.Spec()
	if spec == nil || !spec.TLSEnabled() {
		return manager.Result{}, nil
	}
	p, err := paramsFrom(spec)
	if err != nil {
		c.notReady(spec, err.Error())
		return manager.Result{}, manager.TerminalError(err)
	}
	if spec.TLS.Mode == v1alpha1.TLSProvided {
		return c.reconcileProvided(spec, p)
	}
	return c.reconcileSelfSigned(ctx, spec, p)
}

func (c *Certificates) reconcileSelfSigned(ctx context.Context, spec *v1alpha1.Spec, p pki.Params) (manager.Result, error) {
	now := c.Clock.Now()
	st := c.openStore(spec)
	files, bad, err := load(ctx, st)
	if err != nil {
		c.notReady(spec, err.Error())
		return manager.Result{}, err
	}
	m, pbad := pki.Parse(files)
	for _, e := range pbad {
		if !bad.Has(e.File) {
			bad = append(bad, e)
		}
	}
	g := &gates{spec: spec, store: c.Store}
	plan, err := pki.Decide(files, m, bad, p, now, g)
	if err != nil {
		c.notReady(spec, fmt.Sprintf("%s: %v", st.Where(), err))
		return manager.Result{}, fmt.Errorf("certificates in %s: %w", st.Where(), err)
	}
	if spec.Report() {
		return c.report(spec, st.Where(), m, plan, p, now)
	}
	if plan.Changes() {
		next, issued, err := plan.Apply(p, now)
		if err != nil {
			c.notReady(spec, err.Error())
			return manager.Result{}, err
		}
		// A regenerated state.json restarts the count; the generation must
		// still grow or the registry would not be restarted for the change.
		if pg := c.Store.PKI().Generation; next.Server != m.Server && next.Meta.Generation <= pg {
			next.Meta.Generation = pg + 1
		}
		if err := pki.Verify(next, p.Names, now); err != nil {
			err = fmt.Errorf("refusing to save certificates that do not verify: %w", err)
			c.notReady(spec, err.Error())
			return manager.Result{}, err
		}
		nf, err := pki.Encode(next)
		if err != nil {
			return manager.Result{}, err
		}
		if err := st.Save(ctx, nf); err != nil {
			err = fmt.Errorf("save certificates: %w", err)
			c.notReady(spec, err.Error())
			return manager.Result{}, err
		}
		for _, i := range issued {
			c.Log.Info("issued certificate", "cert", i.Cert, "serial", i.Serial, "notAfter", i.NotAfter,
				"reason", i.Reason, "store", st.Where())
		}
		for _, a := range plan.Actions {
			if a.Cert == "ca" || a.Cert == "state" {
				c.Log.Info("updated certificate state", "action", a.Verb, "reason", a.Reason, "store", st.Where())
			}
		}
		if plan, err = pki.Decide(nf, next, nil, p, now, g); err != nil {
			return manager.Result{}, err
		}
		m = next
	}
	var pending []string
	if plan.Waiting != "" {
		pending = append(pending, plan.Waiting)
	}
	c.publish(spec, m, p, pending)
	c.Metrics.SetOutOfSync(reconciler.Certificates, CertificatesKey, false)
	if plan.Changes() { // a multi-step change: take the next step at once
		return manager.Result{RequeueAfter: time.Second}, nil
	}
	if plan.Waiting != "" { // a rotation waits for nodes or the app: still converging
		return manager.Result{RequeueAfter: requeueAfter(plan.NextCheck, now)}, nil
	}
	return manager.Result{ResyncAfter: requeueAfter(plan.NextCheck, now)}, nil
}

// report publishes what is on disk and what would change; it writes nothing.
func (c *Certificates) report(spec *v1alpha1.Spec, where string, m *pki.Material, plan *pki.Plan, p pki.Params, now time.Time) (manager.Result, error) {
	var pending []string
	for _, a := range plan.Actions {
		pending = append(pending, a.String())
	}
	if plan.Waiting != "" {
		pending = append(pending, plan.Waiting)
	}
	if m.CA != nil && m.Server != nil {
		c.publish(spec, m, p, pending)
	} else {
		c.notReady(spec, "no certificates in "+where+" yet")
		pk := c.Store.PKI()
		pk.Pending = pending
		c.Store.SetPKI(pk)
	}
	c.Metrics.SetOutOfSync(reconciler.Certificates, CertificatesKey, plan.Changes())
	return manager.Result{ResyncAfter: requeueAfter(plan.NextCheck, now)}, nil
}

func (c *Certificates) reconcileProvided(spec *v1alpha1.Spec, p pki.Params) (manager.Result, error) {
	now := c.Clock.Now()
	pr := spec.TLS.Provided
	if pr == nil {
		err := errors.New("tls.mode is provided but tls.provided (certFile, keyFile, caFile) is not set")
		c.notReady(spec, err.Error())
		return manager.Result{}, manager.TerminalError(err)
	}
	pv, err := pki.LoadProvided(pki.ProvidedFiles{CertFile: pr.CertFile, KeyFile: pr.KeyFile, CAFile: pr.CAFile}, p.Names, now)
	if err != nil {
		c.notReady(spec, err.Error())
		return manager.Result{}, err
	}
	prev := c.Store.PKI()
	leaf := pv.Server.Cert
	renew := pki.RenewalTime(leaf.NotBefore, leaf.NotAfter, p.Server.RenewBefore)
	out := state.PKI{
		Ready: true, Mode: spec.TLS.Mode,
		Bundle: pv.Bundle, BundleHash: state.Hash(pv.Bundle),
		ServerChain: pv.Server.CertPEM, ServerKey: pv.Server.KeyPEM, ServerHash: state.Hash(pv.Server.CertPEM),
		Server:     certInfo(leaf, renew),
		Generation: prev.Generation,
	}
	for _, ca := range pv.CAs {
		out.CAs = append(out.CAs, certInfo(ca, time.Time{}))
	}
	if out.ServerHash != prev.ServerHash {
		out.Generation++
		c.Log.Info("using provided certificate", "serial", pki.Serial(leaf), "notAfter", leaf.NotAfter, "file", pr.CertFile)
	}
	if spec.Report() && !now.Before(renew) {
		out.Pending = []string{fmt.Sprintf("renew %s: its renewal time %s has passed (the operator does not renew provided certificates)",
			pr.CertFile, renew.UTC().Format(time.RFC3339))}
	}
	c.Store.SetPKI(out)
	c.setMetrics("server", leaf.NotAfter, renew, true)
	ca := earliestExpiry(pv.CAs)
	c.setMetrics("ca", ca.NotAfter, time.Time{}, true)
	c.Metrics.SetOutOfSync(reconciler.Certificates, CertificatesKey, false)
	next := renew
	if !now.Before(renew) {
		next = leaf.NotAfter
	}
	return manager.Result{ResyncAfter: requeueAfter(next, now)}, nil
}

func (c *Certificates) publish(spec *v1alpha1.Spec, m *pki.Material, p pki.Params, pending []string) {
	bundle := m.Bundle()
	leaf, ca := m.Server.Cert, m.CA.Cert
	srvRenew := pki.RenewalTime(leaf.NotBefore, leaf.NotAfter, p.Server.RenewBefore)
	caRenew := pki.RenewalTime(ca.NotBefore, ca.NotAfter, p.CA.RenewBefore)
	out := state.PKI{
		Ready: true, Mode: spec.TLS.Mode,
		Bundle: bundle, BundleHash: state.Hash(bundle),
		ServerChain: m.Server.CertPEM, ServerKey: m.Server.KeyPEM, ServerHash: state.Hash(m.Server.CertPEM),
		Server:     certInfo(leaf, srvRenew),
		CAs:        []state.CertInfo{certInfo(ca, caRenew)},
		Generation: m.Meta.Generation,
		Pending:    pending,
	}
	if m.Next != nil {
		out.CAs = append(out.CAs, certInfo(m.Next.Cert, time.Time{}))
	}
	if m.Prev != nil {
		out.CAs = append(out.CAs, certInfo(m.Prev, time.Time{}))
	}
	if r := m.Meta.Rotation; r != nil {
		out.Rotation = r.Phase
	}
	c.Store.SetPKI(out)
	c.setMetrics("server", leaf.NotAfter, srvRenew, true)
	c.setMetrics("ca", ca.NotAfter, caRenew, true)
}

// notReady records why the certificates cannot be used now. What was
// published before stays, so no other reconciler withdraws trust or a
// served certificate because of a fault here.
func (c *Certificates) notReady(spec *v1alpha1.Spec, reason string) {
	pk := c.Store.PKI()
	pk.Ready, pk.Reason, pk.Pending = false, reason, nil
	if spec != nil && spec.TLS != nil {
		pk.Mode = spec.TLS.Mode
	}
	c.Store.SetPKI(pk)
	c.Metrics.CertReady.WithLabelValues("ca").Set(0)
	c.Metrics.CertReady.WithLabelValues("server").Set(0)
	c.Metrics.SetOutOfSync(reconciler.Certificates, CertificatesKey, true)
}

func (c *Certificates) setMetrics(cert string, notAfter, renewal time.Time, ready bool) {
	c.Metrics.CertExpiration.WithLabelValues(cert).Set(unix(notAfter))
	c.Metrics.CertRenewal.WithLabelValues(cert).Set(unix(renewal))
	v := 0.0
	if ready {
		v = 1
	}
	c.Metrics.CertReady.WithLabelValues(cert).Set(v)
}

// load reads the set; corruption comes back next to what could be read.
func load(ctx context.Context, st pki.Store) (pki.Files, pki.Corruption, error) {
	f, err := st.Load(ctx)
	var bad pki.Corruption
	if errors.As(err, &bad) {
		return f, bad, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read certificate state from %s: %w", st.Where(), err)
	}
	return f, nil, nil
}

func paramsFrom(spec *v1alpha1.Spec) (pki.Params, error) {
	t := spec.TLS
	alg, err := pki.ParseKeyAlgorithm(t.KeyAlgorithm)
	if err != nil {
		return pki.Params{}, fmt.Errorf("tls.keyAlgorithm: %w", err)
	}
	var hosts []string
	if r := spec.Registry; r != nil {
		hosts = append(hosts, r.RegistryHost())
		hosts = append(hosts, r.DNSNames...)
		hosts = append(hosts, r.IPAddresses...)
	}
	if h := spec.MirrorHost(); h != "" {
		// The mirror serves the same certificate; a changed set of names
		// reissues it and restarts both apps.
		hosts = append(hosts, h)
	}
	names, err := pki.NewSANs(hosts...)
	if err != nil {
		return pki.Params{}, fmt.Errorf("registry: %w", err)
	}
	return pki.Params{
		KeyAlgorithm: alg,
		CA:           pki.CertParams{CommonName: t.CA.CommonName, Duration: t.CA.Duration.Duration, RenewBefore: t.CA.RenewBefore.Duration},
		Server: pki.CertParams{CommonName: t.Server.CommonName, Duration: t.Server.Duration.Duration,
			RenewBefore: t.Server.RenewBefore.Duration},
		Names:                  names,
		RotationOverlap:        t.CA.RotationOverlap.Duration,
		RegenerateOnCorruption: t.CA.RegenerateOnCorruption,
	}, nil
}

func certInfo(c *x509.Certificate, renewal time.Time) state.CertInfo {
	ci := state.CertInfo{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: pki.Serial(c),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, RenewalTime: renewal,
		SHA256: state.Hash(c.Raw), DNSNames: c.DNSNames, SubjectKeyID: fmt.Sprintf("%X", c.SubjectKeyId),
	}
	for _, ip := range c.IPAddresses {
		ci.IPAddresses = append(ci.IPAddresses, ip.String())
	}
	return ci
}

func earliestExpiry(cs []*x509.Certificate) *x509.Certificate {
	e := cs[0]
	for _, c := range cs[1:] {
		if c.NotAfter.Before(e.NotAfter) {
			e = c
		}
	}
	return e
}

func requeueAfter(next, now time.Time) time.Duration {
	if next.IsZero() {
		return MaxCertificatesRequeue
	}
	return min(max(next.Sub(now), time.Second), MaxCertificatesRequeue)
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix())
}
