package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeGates struct {
	distributed, retired bool
	asked                []string
}

func (g *fakeGates) BundleDistributed(b []byte, since time.Time) (bool, string) {
	g.asked = append(g.asked, "bundle")
	return g.distributed, "198.18.0.2 has not reported the new bundle"
}

func (g *fakeGates) OldServerRetired(gen int64, since time.Time) (bool, string) {
	g.asked = append(g.asked, "retired")
	return g.retired, "the registry has not restarted since generation " + string(rune('0'+gen))
}

type harness struct {
	t     *testing.T
	files Files
	p     Params
	g     *fakeGates
}

func testParams(t *testing.T) Params {
	return Params{
		KeyAlgorithm:    ECDSAP256,
		CA:              CertParams{CommonName: "test CA", Duration: 3650 * 24 * time.Hour, RenewBefore: 365 * 24 * time.Hour},
		Server:          CertParams{CommonName: "registry.example", Duration: 90 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour},
		Names:           mustSANs(t, "registry.example", "198.18.0.10", "127.0.0.1"),
		RotationOverlap: 5 * time.Minute,
	}
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, files: Files{}, p: testParams(t), g: &fakeGates{}}
}

func (h *harness) material() *Material {
	h.t.Helper()
	m, bad := Parse(h.files)
	if len(bad) > 0 {
		h.t.Fatalf("state does not parse: %v", bad)
	}
	return m
}

// pass runs one enforce pass at now and returns the plan and what it issued.
func (h *harness) pass(now time.Time) (*Plan, []Issued) {
	h.t.Helper()
	m, bad := Parse(h.files)
	pl, err := Decide(h.files, m, bad, h.p, now, h.g)
	if err != nil {
		h.t.Fatalf("Decide: %v", err)
	}
	if !pl.Changes() {
		return pl, nil
	}
	next, issued, err := pl.Apply(h.p, now)
	if err != nil {
		h.t.Fatalf("Apply: %v", err)
	}
	if h.files, err = Encode(next); err != nil {
		h.t.Fatal(err)
	}
	if err := Verify(h.material(), h.p.Names, now); err != nil {
		h.t.Fatalf("state after pass does not verify: %v", err)
	}
	return pl, issued
}

func actionCerts(pl *Plan) string {
	var s []string
	for _, a := range pl.Actions {
		s = append(s, a.Cert)
	}
	return strings.Join(s, ",")
}

func TestBootstrapThenSteady(t *testing.T) {
	h := newHarness(t)
	pl, issued := h.pass(t0)
	if actionCerts(pl) != "ca,server" || len(issued) != 2 {
		t.Fatalf("bootstrap actions %v issued %v", pl.Actions, issued)
	}
	m := h.material()
	if m.Meta.Generation != 1 || m.Meta.Rotation != nil || !bytes.Equal(h.files[FileBundle], m.CA.CertPEM) {
		t.Fatalf("meta %+v, bundle must be exactly the CA", m.Meta)
	}
	pl, _ = h.pass(t0.Add(time.Minute))
	if pl.Changes() {
		t.Fatalf("steady state changed: %v", pl.Actions)
	}
	if want := RenewalTime(m.Server.Cert.NotBefore, m.Server.Cert.NotAfter, h.p.Server.RenewBefore); !pl.NextCheck.Equal(want) {
		t.Fatalf("NextCheck %v, want server renewal %v", pl.NextCheck, want)
	}
}

func TestServerRenewsAtRenewalTime(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		duration, renewBefore time.Duration
	}{
		{"renewBefore within lifetime", 90 * 24 * time.Hour, 30 * 24 * time.Hour},
		{"renewBefore longer than lifetime", 3 * time.Hour, 5 * time.Hour},
		{"short-lived", 3 * time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.p.Server.Duration, h.p.Server.RenewBefore = tc.duration, tc.renewBefore
			h.pass(t0)
			m := h.material()
			leaf := m.Server.Cert
			life := leaf.NotAfter.Sub(leaf.NotBefore)
			want := leaf.NotAfter.Add(-min(tc.renewBefore, life/3))
			if tc.renewBefore < life {
				want = leaf.NotAfter.Add(-tc.renewBefore)
			}
			if pl, _ := h.pass(want.Add(-time.Second)); pl.Changes() {
				t.Fatalf("renewed before %v: %v", want, pl.Actions)
			}
			pl, issued := h.pass(want)
			if actionCerts(pl) != "server" || !strings.Contains(pl.Actions[0].Reason, "renewal time") {
				t.Fatalf("at %v: %v", want, pl.Actions)
			}
			after := h.material()
			if !bytes.Equal(after.CA.CertPEM, m.CA.CertPEM) || after.Meta.Generation != 2 || issued[0].Serial == Serial(leaf) {
				t.Fatal("server renewal must keep the CA, bump the generation and change the serial")
			}
		})
	}
}

func TestCARenewalKeepsKeyAndNeedsNoRotation(t *testing.T) {
	h := newHarness(t)
	h.p.CA.Duration, h.p.CA.RenewBefore = 30*24*time.Hour, 60*24*time.Hour // longer than lifetime: 2/3
	h.p.Server.Duration = 5 * 24 * time.Hour
	h.p.Server.RenewBefore = 24 * time.Hour
	h.pass(t0)
	old := h.material()
	due := RenewalTime(old.CA.Cert.NotBefore, old.CA.Cert.NotAfter, h.p.CA.RenewBefore)
	now := t0
	for now.Before(due.Add(-time.Second)) { // server renewals happen meanwhile; the CA stays
		pl, _ := h.pass(now)
		if strings.Contains(actionCerts(pl), "ca") {
			t.Fatalf("CA renewed early at %v", now)
		}
		now = now.Add(12 * time.Hour)
		if now.After(due) {
			now = due.Add(-time.Second)
		}
	}
	before := h.material()
	pl, _ := h.pass(due)
	if actionCerts(pl) != "ca,server" {
		t.Fatalf("at CA renewal time: %v", pl.Actions)
	}
	m := h.material()
	if m.Meta.Rotation != nil || !KeyMatches(m.CA.Key, old.CA.Cert.PublicKey) {
		t.Fatal("same-key renewal must not rotate or change the key")
	}
	// Nodes still holding the previous bundle verify the new chain.
	verifyAgainst(t, m.Server.Cert, before.TrustedCAs(), due)
	verifyAgainst(t, before.Server.Cert, m.TrustedCAs(), due)
}

func verifyAgainst(t *testing.T, leaf *x509.Certificate, roots []*x509.Certificate, now time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "registry.example", CurrentTime: now}); err != nil {
		t.Fatalf("leaf %s does not verify: %v", Serial(leaf), err)
	}
}

func TestSpecChangesReissueServer(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	h.p.Names = mustSANs(t, "registry.example", "new.example", "127.0.0.1")
	pl, _ := h.pass(t0.Add(time.Minute))
	if actionCerts(pl) != "server" || !strings.Contains(pl.Actions[0].Reason, "new.example") {
		t.Fatalf("SAN change: %v", pl.Actions)
	}
	if !SANsOf(h.material().Server.Cert).Equal(h.p.Names) {
		t.Fatal("new names not issued")
	}
	h.p.Server.CommonName = "other.example"
	if pl, _ := h.pass(t0.Add(2 * time.Minute)); !strings.Contains(pl.Actions[0].Reason, "commonName") {
		t.Fatalf("CN change: %v", pl.Actions)
	}
	h.p.Server.Duration = 3 * time.Minute
	if pl, _ := h.pass(t0.Add(3 * time.Minute)); !strings.Contains(pl.Actions[0].Reason, "duration") {
		t.Fatalf("duration change: %v", pl.Actions)
	}
}

func TestServerNotChainingToCAIsReissued(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	other, _ := NewCA(ECDSAP256, CertParams{CommonName: "test CA", Duration: time.Hour * 100}, t0)
	stray, _ := IssueServer(other, ECDSAP256, h.p.Server, h.p.Names, t0)
	h.files[FileServerCert], h.files[FileServerKey] = stray.CertPEM, stray.KeyPEM
	pl, _ := h.pass(t0.Add(time.Minute))
	if actionCerts(pl) != "server" || !strings.Contains(pl.Actions[0].Reason, "does not chain") {
		t.Fatalf("%v", pl.Actions)
	}
}

func TestMissingServerFilesAndDerivedFiles(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	delete(h.files, FileBundle)
	pl, _ := h.pass(t0.Add(time.Minute))
	if actionCerts(pl) != "state" || !strings.Contains(pl.Actions[0].Verb, FileBundle) {
		t.Fatalf("missing bundle: %v", pl.Actions)
	}
	m, bad := Parse(h.files)
	pl, _ = Decide(h.files, m, bad, h.p, t0.Add(time.Minute), h.g)
	if pl.Changes() {
		t.Fatalf("bundle rewrite not applied: %v", pl.Actions)
	}
	delete(h.files, FileServerKey)
	if pl, _ := h.pass(t0.Add(2 * time.Minute)); actionCerts(pl) != "server" || !strings.Contains(pl.Actions[0].Reason, "missing") {
		t.Fatalf("missing tls.key: %v", pl.Actions)
	}
}

func TestCorruptStateIsNotReplaced(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(Files)
		file    string
		newCA   bool
		reasons string
	}{
		{"truncated ca.key", func(f Files) { f[FileCAKey] = f[FileCAKey][:40] }, FileCAKey, true, "truncated"},
		{"ca.key of another CA", func(f Files) {
			o, _ := NewCA(ECDSAP256, CertParams{CommonName: "x", Duration: time.Hour}, t0)
			f[FileCAKey] = o.KeyPEM
		}, FileCAKey, true, "does not match"},
		{"ca.key missing", func(f Files) { delete(f, FileCAKey) }, FileCAKey, true, "missing"},
		{"ca.crt not a CA", func(f Files) {
			f[FileCACert] = f[FileServerCert][:bytes.Index(f[FileServerCert], []byte("-----END"))+26]
		}, FileCACert, true, "not a CA"},
		{"state.json garbage", func(f Files) { f[FileState] = []byte("{") }, FileState, true, "parse"},
		{"tls.key of another cert", func(f Files) { f[FileServerKey] = f[FileCAKey] }, FileServerKey, false, "does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.pass(t0)
			good := h.material()
			tc.damage(h.files)
			m, bad := Parse(h.files)
			if !bad.Has(tc.file) || !strings.Contains(bad.Error(), tc.reasons) {
				t.Fatalf("corruption %v, want %s (%s)", bad, tc.file, tc.reasons)
			}
			_, err := Decide(h.files, m, bad, h.p, t0.Add(time.Minute), h.g)
			var cse *CorruptStateError
			if !errors.As(err, &cse) || !strings.Contains(err.Error(), "regenerateOnCorruption") {
				t.Fatalf("Decide = %v, want CorruptStateError naming the fix", err)
			}
			h.p.RegenerateOnCorruption = true
			pl, _ := h.pass(t0.Add(time.Minute))
			after := h.material()
			if tc.newCA {
				if actionCerts(pl) != "ca,server" || bytes.Equal(after.CA.CertPEM, good.CA.CertPEM) {
					t.Fatalf("regeneration: %v", pl.Actions)
				}
			} else if actionCerts(pl) != "server" || !bytes.Equal(after.CA.CertPEM, good.CA.CertPEM) {
				t.Fatalf("a corrupt server key must not replace the CA: %v", pl.Actions)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	m, bad := Parse(h.files)
	_, err := Decide(h.files, m, bad, h.p, t0.Add(-time.Hour), h.g)
	var cs *ClockSkewError
	if !errors.As(err, &cs) || cs.File != FileCACert || !strings.Contains(err.Error(), "NTP") {
		t.Fatalf("Decide = %v, want clock skew on ca.crt", err)
	}
}

func TestCARotationPhases(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	s0 := h.material()
	h.p.KeyAlgorithm = ECDSAP384 // the CA key must change: rotation
	now := t0.Add(time.Hour)
	pl, _ := h.pass(now)
	if actionCerts(pl) != "ca" || !strings.Contains(pl.Actions[0].Verb, "start CA rotation") {
		t.Fatalf("start: %v", pl.Actions)
	}
	s1 := h.material()
	if s1.Meta.Rotation.Phase != PhasePublishing || len(s1.TrustedCAs()) != 2 || !bytes.Equal(s1.CA.CertPEM, s0.CA.CertPEM) {
		t.Fatalf("publishing: %+v", s1.Meta.Rotation)
	}
	// The server key algorithm changed too, but the switch issues the
	// server certificate with it: nothing is reissued by the old CA.
	if !bytes.Equal(s1.Server.CertPEM, s0.Server.CertPEM) || s1.Meta.Generation != s0.Meta.Generation {
		t.Fatal("server certificate reissued at the start of the rotation")
	}
	if pl, _ := h.pass(now.Add(4 * time.Minute)); pl.Changes() || !strings.Contains(pl.Waiting, "overlap") {
		t.Fatalf("switched before the overlap: %v / %s", pl.Actions, pl.Waiting)
	}
	if len(h.g.asked) != 0 {
		t.Fatal("nodes consulted before the overlap")
	}
	pl, _ = h.pass(now.Add(6 * time.Minute))
	if pl.Changes() || !strings.Contains(pl.Waiting, "198.18.0.2") || pl.NextCheck != now.Add(6*time.Minute+PollWhileWaiting) {
		t.Fatalf("switched before nodes carried the bundle: %v / %s", pl.Actions, pl.Waiting)
	}
	h.g.distributed = true
	now = now.Add(7 * time.Minute)
	pl, _ = h.pass(now)
	if actionCerts(pl) != "ca,server" {
		t.Fatalf("switch: %v", pl.Actions)
	}
	s2 := h.material()
	if s2.Meta.Rotation.Phase != PhaseRetiring || !bytes.Equal(h.files[FileBundle], s1.Bundle()) ||
		ChainsTo(s2.Server.Cert, s1.Next.Cert) != "" || !s2.Meta.Rotation.OldServerNotAfter.Equal(s1.Server.Cert.NotAfter) {
		t.Fatalf("retiring: %+v", s2.Meta.Rotation)
	}
	if s2.Meta.Generation != s0.Meta.Generation+1 || AlgorithmOf(s2.Server.Cert.PublicKey) != ECDSAP384 {
		t.Fatalf("switch: generation %d -> %d, server key %s: want one new generation with the new algorithm",
			s0.Meta.Generation, s2.Meta.Generation, AlgorithmOf(s2.Server.Cert.PublicKey))
	}
	verifyAgainst(t, s2.Server.Cert, s1.TrustedCAs(), now) // nodes with the published bundle
	verifyAgainst(t, s1.Server.Cert, s2.TrustedCAs(), now) // a registry not yet restarted
	if pl, _ := h.pass(now.Add(10 * time.Minute)); pl.Changes() || !strings.Contains(pl.Waiting, "restarted") {
		t.Fatalf("old CA dropped while the old certificate may be served: %v / %s", pl.Actions, pl.Waiting)
	}
	h.g.retired = true
	pl, _ = h.pass(now.Add(11 * time.Minute))
	if actionCerts(pl) != "ca" {
		t.Fatalf("finish: %v", pl.Actions)
	}
	s3 := h.material()
	if s3.Meta.Rotation != nil || len(s3.TrustedCAs()) != 1 || AlgorithmOf(s3.CA.Cert.PublicKey) != ECDSAP384 ||
		!bytes.Equal(s3.Server.CertPEM, s2.Server.CertPEM) {
		t.Fatal("after the rotation only the new CA is trusted and the served certificate is unchanged")
	}
}

func TestRotationFinishesWhenOldServerCertExpires(t *testing.T) {
	h := newHarness(t)
	h.p.Server.Duration, h.p.Server.RenewBefore = time.Hour, 10*time.Minute
	h.pass(t0)
	h.p.CA.CommonName = "renamed CA"
	h.g.distributed = true
	h.pass(t0)
	h.pass(t0.Add(10 * time.Minute))
	m := h.material()
	if m.Meta.Rotation.Phase != PhaseRetiring {
		t.Fatalf("phase %+v", m.Meta.Rotation)
	}
	pl, _ := h.pass(m.Meta.Rotation.OldServerNotAfter)
	if !strings.HasPrefix(actionCerts(pl), "ca") || !strings.Contains(pl.Actions[0].Reason, "expired") {
		t.Fatalf("expiry of the old certificate must end the rotation: %v", pl.Actions)
	}
}

func TestSpecChangeDuringPublishingRestartsRotation(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	h.p.KeyAlgorithm = ECDSAP384
	h.pass(t0)
	first := h.material().Next
	h.p.KeyAlgorithm = RSA2048
	pl, _ := h.pass(t0.Add(time.Minute))
	m := h.material()
	if !strings.Contains(pl.Actions[0].Reason, "during the rotation") || AlgorithmOf(m.Next.Cert.PublicKey) != RSA2048 ||
		bytes.Equal(m.Next.CertPEM, first.CertPEM) || !m.Meta.Rotation.Since.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%v", pl.Actions)
	}
}

// A keyAlgorithm change is one CA rotation and one new server certificate
// (one registry restart), however many passes the rotation takes; other
// reasons still reissue the server certificate during it.
func TestKeyAlgorithmChangeIssuesTheServerOnce(t *testing.T) {
	h := newHarness(t)
	h.pass(t0)
	g0 := h.material().Meta.Generation
	h.p.KeyAlgorithm = RSA2048
	now := t0
	for i := 0; i < 20 && (i == 0 || h.material().Meta.Rotation != nil); i++ {
		h.g.distributed, h.g.retired = i > 3, i > 6
		h.pass(now)
		now = now.Add(2 * time.Minute)
	}
	m := h.material()
	if m.Meta.Rotation != nil {
		t.Fatalf("rotation not finished: %+v", m.Meta.Rotation)
	}
	if m.Meta.Generation != g0+1 || AlgorithmOf(m.Server.Cert.PublicKey) != RSA2048 || AlgorithmOf(m.CA.Cert.PublicKey) != RSA2048 {
		t.Fatalf("server generations %d -> %d (want one), server %s, CA %s", g0, m.Meta.Generation,
			AlgorithmOf(m.Server.Cert.PublicKey), AlgorithmOf(m.CA.Cert.PublicKey))
	}
	// Names changed while the rotation publishes: issued at once.
	h.p.KeyAlgorithm = ECDSAP384
	h.g.distributed, h.g.retired = false, false
	h.pass(now)
	h.p.Names = mustSANs(t, "registry.example", "other.example", "127.0.0.1")
	pl, _ := h.pass(now.Add(time.Minute))
	if actionCerts(pl) != "server" || strings.Contains(pl.Actions[0].Reason, "key algorithm") {
		t.Fatalf("names changed during a rotation: %v", pl.Actions)
	}
}
