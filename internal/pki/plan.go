package pki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PollWhileWaiting is how often a rotation that waits on other reconcilers
// looks again (their changes also trigger a pass sooner).
const PollWhileWaiting = 30 * time.Second

// Params is the part of the spec the certificate logic needs.
type Params struct {
	KeyAlgorithm           KeyAlgorithm
	CA                     CertParams
	Server                 CertParams
	Names                  SANs
	RotationOverlap        time.Duration
	RegenerateOnCorruption bool
}

// Gates answers what the certificate logic cannot see: whether the rest of
// the cluster has caught up with a rotation.
type Gates interface {
	// BundleDistributed reports whether every node carries bundle, as
	// observed after since; why says what is missing.
	BundleDistributed(bundle []byte, since time.Time) (ok bool, why string)
	// OldServerRetired reports whether the server certificate served
	// before generation gen can no longer be served.
	OldServerRetired(gen int64, since time.Time) (ok bool, why string)
}

type caOp int

const (
	caKeep caOp = iota
	caNew
	caRenew
	caStartRotation
	caSwitch
	caFinish
)

// Action is one thing a pass does (or in report mode would do), and why.
type Action struct {
	Cert   string // ca | server | state
	Verb   string
	Reason string
}

func (a Action) String() string { return a.Verb + ": " + a.Reason }

// Plan is what a pass decided. Apply carries it out.
type Plan struct {
	Actions []Action
	// Waiting says what a CA rotation waits on ("" when nothing).
	Waiting string
	// NextCheck is the earliest time something may become due.
	NextCheck time.Time

	ca       caOp
	caReason string
	srv      string // reason to issue the server certificate, "" to keep it
	base     *Material
}

// Issued records one certificate a pass created, for the log.
type Issued struct {
	Cert     string
	Serial   string
	NotAfter time.Time
	Reason   string
}

// ClockSkewError is a certificate that is not valid yet by this machine's
// clock: renewing would not help, the clock must be fixed.
type ClockSkewError struct {
	File      string
	NotBefore time.Time
	Now       time.Time
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("%s is not valid before %s, %s after this machine's clock (%s): the clock is behind or was "+
		"set back; fix time synchronisation (NTP). The files are left as they are",
		e.File, e.NotBefore.UTC().Format(time.RFC3339), e.NotBefore.Sub(e.Now).Round(time.Second), e.Now.UTC().Format(time.RFC3339))
}

// CorruptStateError wraps Corruption when regeneration is not allowed.
type CorruptStateError struct{ Corruption Corruption }

func (e *CorruptStateError) Error() string {
	return "certificate state is unusable and was left untouched: " + e.Corruption.Error() +
		" (fix or restore the files, or set tls.ca.regenerateOnCorruption: true to issue a new CA, which every node must then trust anew)"
}

func (e *CorruptStateError) Unwrap() error { return e.Corruption }

var caFiles = []string{FileCACert, FileCAKey, FileNextCACert, FileNextCAKey, FilePrevCACert, FileState}

// Decide compares the state set (files, parsed as cur with corruption bad)
// with the spec and returns what to do. It changes nothing.
func Decide(files Files, cur *Material, bad Corruption, p Params, now time.Time, g Gates) (*Plan, error) {
	pl := &Plan{}
	m := *cur
	if len(bad) > 0 {
		if !p.RegenerateOnCorruption {
			return nil, &CorruptStateError{Corruption: bad}
		}
		if bad.Has(caFiles...) {
			pl.ca, pl.caReason = caNew, "regenerateOnCorruption: replacing unusable state: "+bad.Error()
			m.CA, m.Next, m.Prev = nil, nil, nil
			m.Meta.Rotation = nil
		} else {
			pl.srv = "regenerateOnCorruption: replacing unusable " + bad.Error()
		}
	}
	pl.base = &m
	if err := checkSkew(&m, now); err != nil {
		return nil, err
	}
	if m.CA == nil {
		if pl.ca == caKeep {
			pl.ca, pl.caReason = caNew, "no CA in the state store"
			m.Next, m.Prev, m.Meta.Rotation = nil, nil, nil
		}
	} else {
		decideCA(pl, &m, p, now, g)
	}
	switch pl.ca {
	case caNew:
		pl.srv = "issued by the new CA"
	case caRenew:
		pl.srv = "issued by the renewed CA"
	case caSwitch:
		pl.srv = "issued by the new CA of the rotation"
	}
	if pl.srv == "" {
		decideServer(pl, &m, p, now, pl.rotationAhead(&m))
	}
	pl.actions(p)
	if len(pl.Actions) == 0 {
		want, err := Encode(&m)
		if err != nil {
			return nil, err
		}
		if diff := diffNames(files, want); len(diff) > 0 {
			pl.Actions = append(pl.Actions, Action{Cert: "state", Verb: "rewrite " + strings.Join(diff, ", "),
				Reason: "they differ from what the certificates in use imply"})
		}
	}
	return pl, nil
}

func checkSkew(m *Material, now time.Time) error {
	for _, c := range []struct {
		file string
		kp   *KeyPair
	}{{FileCACert, m.CA}, {FileNextCACert, m.Next}, {FileServerCert, m.Server}} {
		if c.kp != nil && c.kp.Cert.NotBefore.After(now) {
			return &ClockSkewError{File: c.file, NotBefore: c.kp.Cert.NotBefore, Now: now}
		}
	}
	return nil
}

// needsNewKey says why ca cannot simply be renewed in place.
func needsNewKey(ca *KeyPair, p Params) string {
	if a := AlgorithmOf(ca.Cert.PublicKey); a != p.KeyAlgorithm {
		return fmt.Sprintf("key algorithm %s -> %s", a, p.KeyAlgorithm)
	}
	if cn := ca.Cert.Subject.CommonName; cn != p.CA.CommonName {
		return fmt.Sprintf("commonName %q -> %q", cn, p.CA.CommonName)
	}
	return ""
}

func decideCA(pl *Plan, m *Material, p Params, now time.Time, g Gates) {
	rot := m.Meta.Rotation
	switch {
	case rot == nil:
		if why := needsNewKey(m.CA, p); why != "" {
			pl.ca, pl.caReason = caStartRotation, why
			return
		}
		rt := RenewalTime(m.CA.Cert.NotBefore, m.CA.Cert.NotAfter, p.CA.RenewBefore)
		switch {
		case !now.Before(m.CA.Cert.NotAfter):
			pl.ca, pl.caReason = caRenew, "expired at "+ts(m.CA.Cert.NotAfter)
		case !now.Before(rt):
			pl.ca, pl.caReason = caRenew, "renewal time "+ts(rt)+" reached"
		default:
			pl.next(rt)
		}
	case rot.Phase == PhasePublishing:
		if why := needsNewKey(m.Next, p); why != "" {
			pl.ca, pl.caReason = caStartRotation, "spec changed during the rotation: "+why
			return
		}
		ready := rot.Since.Add(p.RotationOverlap)
		if now.Before(ready) {
			pl.Waiting = "CA rotation: old and new CA published, overlap lasts until " + ts(ready)
			pl.next(ready)
			return
		}
		if ok, why := g.BundleDistributed(m.Bundle(), rot.Since); !ok {
			pl.Waiting = "CA rotation: waiting until every node trusts the new CA: " + why
			pl.next(now.Add(PollWhileWaiting))
			return
		}
		pl.ca, pl.caReason = caSwitch, "the new CA is published since "+ts(rot.Since)+" and every node trusts it"
	case rot.Phase == PhaseRetiring:
		if !now.Before(rot.OldServerNotAfter) {
			pl.ca, pl.caReason = caFinish, "the old server certificate expired at "+ts(rot.OldServerNotAfter)
			return
		}
		ready := rot.Since.Add(p.RotationOverlap)
		if now.Before(ready) {
			pl.Waiting = "CA rotation: server certificate switched, old CA stays trusted until at least " + ts(ready)
			pl.next(ready)
			return
		}
		if ok, why := g.OldServerRetired(rot.SwitchGeneration, rot.Since); !ok {
			pl.Waiting = "CA rotation: old CA stays trusted: " + why
			pl.next(rot.OldServerNotAfter)
			pl.next(now.Add(PollWhileWaiting))
			return
		}
		pl.ca, pl.caReason = caFinish, "no registry serves the old CA's certificate any more"
	}
}

// rotationAhead reports whether a CA rotation has started (or starts in
// this pass) and not yet switched: the switch issues the server
// certificate anew with the spec's key algorithm.
func (pl *Plan) rotationAhead(m *Material) bool {
	return pl.ca == caStartRotation || (pl.ca == caKeep && m.Meta.Rotation != nil && m.Meta.Rotation.Phase == PhasePublishing)
}

// decideServer says whether the server certificate must be issued anew.
// With a rotation ahead, a key algorithm change alone waits for the switch:
// issuing now, by the old CA, would restart the registry twice for one
// keyAlgorithm change (once now, once at the switch). Anything else (names,
// expiry, renewal time) cannot wait for a rotation that may take long.
func decideServer(pl *Plan, m *Material, p Params, now time.Time, rotationAhead bool) {
	if m.Server == nil {
		pl.srv = FileServerCert + "/" + FileServerKey + " missing"
		return
	}
	leaf, ca := m.Server.Cert, m.CA.Cert
	var why []string
	if a := AlgorithmOf(leaf.PublicKey); a != p.KeyAlgorithm && !rotationAhead {
		why = append(why, fmt.Sprintf("key algorithm %s -> %s", a, p.KeyAlgorithm))
	}
	if have := SANsOf(leaf); !have.Equal(p.Names) {
		why = append(why, fmt.Sprintf("names %v -> %v", have.Strings(), p.Names.Strings()))
	}
	if p.Server.CommonName != "" && leaf.Subject.CommonName != p.Server.CommonName {
		why = append(why, fmt.Sprintf("commonName %q -> %q", leaf.Subject.CommonName, p.Server.CommonName))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		why = append(why, "no serverAuth extended key usage")
	}
	if r := ChainsTo(leaf, ca); r != "" {
		why = append(why, "does not chain to the current CA: "+r)
	} else if len(m.Chain) < 2 || !bytes.Equal(m.Chain[1].Raw, ca.Raw) {
		why = append(why, FileServerCert+" does not carry the current CA after the server certificate")
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore) - Backdate
	if !leaf.NotAfter.Equal(ca.NotAfter) && (life-p.Server.Duration).Abs() > time.Second {
		why = append(why, fmt.Sprintf("duration %s -> %s", life, p.Server.Duration))
	}
	rt := RenewalTime(leaf.NotBefore, leaf.NotAfter, p.Server.RenewBefore)
	switch {
	case !now.Before(leaf.NotAfter):
		why = append(why, "expired at "+ts(leaf.NotAfter))
	case !now.Before(rt):
		why = append(why, "renewal time "+ts(rt)+" reached")
	}
	if len(why) > 0 {
		pl.srv = strings.Join(why, "; ")
		return
	}
	pl.next(rt)
}

func (pl *Plan) actions(p Params) {
	add := func(cert, verb, reason string) {
		pl.Actions = append(pl.Actions, Action{Cert: cert, Verb: verb, Reason: reason})
	}
	switch pl.ca {
	case caNew:
		add("ca", fmt.Sprintf("issue CA %q (%s, valid %s)", p.CA.CommonName, p.KeyAlgorithm, p.CA.Duration), pl.caReason)
	case caRenew:
		add("ca", fmt.Sprintf("renew CA with its key (valid %s)", p.CA.Duration), pl.caReason)
	case caStartRotation:
		add("ca", fmt.Sprintf("start CA rotation: create CA %q (%s) and publish it next to the current one", p.CA.CommonName, p.KeyAlgorithm), pl.caReason)
	case caSwitch:
		add("ca", "CA rotation: sign the server certificate with the new CA", pl.caReason)
	case caFinish:
		add("ca", "CA rotation: drop the old CA from "+FileBundle, pl.caReason)
	}
	if pl.srv != "" {
		add("server", fmt.Sprintf("issue server certificate for %v (%s, valid %s)", p.Names.Strings(), p.KeyAlgorithm, p.Server.Duration), pl.srv)
	}
}

func (pl *Plan) next(t time.Time) {
	if pl.NextCheck.IsZero() || t.Before(pl.NextCheck) {
		pl.NextCheck = t
	}
}

// Changes reports whether Apply would write anything.
func (pl *Plan) Changes() bool { return len(pl.Actions) > 0 }

// Apply carries the plan out in memory and returns the new material and
// what was issued. The caller saves it as one set.
func (pl *Plan) Apply(p Params, now time.Time) (*Material, []Issued, error) {
	m := *pl.base
	var issued []Issued
	rec := func(cert string, kp *KeyPair, reason string) {
		issued = append(issued, Issued{Cert: cert, Serial: Serial(kp.Cert), NotAfter: kp.Cert.NotAfter, Reason: reason})
	}
	switch pl.ca {
	case caNew:
		ca, err := NewCA(p.KeyAlgorithm, p.CA, now)
		if err != nil {
			return nil, nil, err
		}
		m.CA, m.Next, m.Prev, m.Meta.Rotation = ca, nil, nil, nil
		rec("ca", ca, pl.caReason)
	case caRenew:
		ca, err := RenewCA(m.CA, p.CA.Duration, now)
		if err != nil {
			return nil, nil, err
		}
		m.CA = ca
		rec("ca", ca, pl.caReason)
	case caStartRotation:
		next, err := NewCA(p.KeyAlgorithm, p.CA, now)
		if err != nil {
			return nil, nil, err
		}
		m.Next = next
		m.Meta.Rotation = &Rotation{Phase: PhasePublishing, Since: now.UTC(), Reason: pl.caReason}
		rec("next-ca", next, pl.caReason)
	case caSwitch:
		r := &Rotation{Phase: PhaseRetiring, Since: now.UTC(), Reason: m.Meta.Rotation.Reason,
			SwitchGeneration: m.Meta.Generation + 1}
		if m.Server != nil {
			r.OldServerNotAfter = m.Server.Cert.NotAfter
		}
		m.Prev, m.CA, m.Next, m.Meta.Rotation = m.CA.Cert, m.Next, nil, r
	case caFinish:
		m.Prev, m.Meta.Rotation = nil, nil
	}
	if pl.srv != "" {
		srv, err := IssueServer(m.CA, p.KeyAlgorithm, p.Server, p.Names, now)
		if err != nil {
			return nil, nil, err
		}
		m.Server, m.Chain = srv, []*x509.Certificate{srv.Cert, m.CA.Cert}
		m.Meta.Generation++
		rec("server", srv, pl.srv)
	}
	return &m, issued, nil
}

// diffNames compares only the certificate files: the set may hold files
// another reconciler keeps (the pull password), which Encode never makes.
func diffNames(have, want Files) []string {
	var out []string
	for _, n := range CertificateFiles {
		if !bytes.Equal(have[n], want[n]) || (have[n] == nil) != (want[n] == nil) {
			out = append(out, n)
		}
	}
	return out
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }
