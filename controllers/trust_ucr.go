package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/pki"
)

// trustCA is one CA of the bundle, as the per-CA outputs write it.
type trustCA struct {
	pem  []byte
	file string // caFilePrefix + a prefix of the DER's sha256 + ".crt"
	hash string // OpenSSL subject hash: the name of its <hash>.N link
}

// caFilePrefix starts the name of every CA file the operator writes into a
// shared directory. The name is derived from the certificate, so a CA
// rotation adds a second file next to the first instead of replacing it.
const caFilePrefix = "registry-operator-"

// splitBundle returns the bundle's certificates, each once.
func splitBundle(bundle []byte) ([]trustCA, error) {
	var out []trustCA
	seen := map[string]bool{}
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		h, err := pki.SubjectHash(cert.RawSubject)
		if err != nil {
			return nil, fmt.Errorf("certificate %d (%s): %w", len(out)+1, cert.Subject, err)
		}
		sum := sha256.Sum256(b.Bytes)
		file := caFilePrefix + hex.EncodeToString(sum[:8]) + ".crt"
		if seen[file] {
			continue
		}
		seen[file] = true
		out = append(out, trustCA{pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes}), file: file, hash: h})
	}
	if len(out) == 0 {
		return nil, errors.New("it holds no PEM certificate")
	}
	slices.SortFunc(out, func(a, b trustCA) int { return strings.Compare(a.file, b.file) })
	return out, nil
}

// ucrOutput keeps the bundle in the directory the Mesos agent (and any
// OpenSSL -CApath client) reads: one file per CA and a <subject hash>.N
// link to each. The directory is shared (DC/OS keeps its own root CA
// there), so the operator lists what it created in ucrManifest and never
// touches any other entry.
type ucrOutput struct{ dir string }

const ucrManifest = ".registry-operator-owned"

func (u *ucrOutput) sync(ctx context.Context, c nodes.Conn, w *trustWant, o *outcome) error {
	old, err := readManifest(ctx, c, path.Join(u.dir, ucrManifest))
	if err != nil {
		return err
	}
	ents, err := c.ReadDir(ctx, u.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d := &ucrDir{c: c, dir: u.dir, owned: old, ents: map[string]nodes.FileInfo{}, targets: map[string]string{}}
	for _, e := range ents {
		d.ents[e.Name] = e
	}
	wantFiles := map[string]bool{}
	for _, ca := range w.cas {
		wantFiles[ca.file] = true
	}
	keep, links, err := d.plan(ctx, w.cas, wantFiles)
	if err != nil {
		return err
	}
	final := maps.Clone(wantFiles)
	for name := range keep {
		final[name] = true
	}
	// Claim every name before creating it, so an interrupted pass leaves
	// nothing the next one would take for someone else's.
	if claims := union(old, final); !maps.Equal(claims, old) {
		if err := syncFile(ctx, c, path.Join(u.dir, ucrManifest), manifestText(claims), 0o644, &outcome{}); err != nil {
			return err
		}
	}
	for _, ca := range w.cas {
		if err := syncFile(ctx, c, path.Join(u.dir, ca.file), ca.pem, 0o644, o); err != nil {
			return err
		}
	}
	for _, l := range links {
		o.changes = append(o.changes, fmt.Sprintf("link %s -> %s (subject hash)", path.Join(u.dir, l.name), l.target))
		if err := c.Symlink(ctx, l.target, path.Join(u.dir, l.name)); err != nil {
			return err
		}
	}
	if err := d.removeStale(ctx, keep, wantFiles, o); err != nil {
		return err
	}
	if maps.Equal(final, old) {
		return nil
	}
	return syncFile(ctx, c, path.Join(u.dir, ucrManifest), manifestText(final), 0o644, o)
}

// ucrDir is one pass's view of the directory.
type ucrDir struct {
	c       nodes.Conn
	dir     string
	owned   map[string]bool // the manifest as read
	ents    map[string]nodes.FileInfo
	targets map[string]string // readlink cache
}

type link struct{ name, target string }

func (d *ucrDir) target(ctx context.Context, name string) (string, error) {
	if t, ok := d.targets[name]; ok {
		return t, nil
	}
	t, err := d.c.Readlink(ctx, path.Join(d.dir, name))
	if err != nil {
		return "", err
	}
	d.targets[name] = t
	return t, nil
}

// linkedFile returns the operator CA file a link points at, or "" when
// name is not a link to one. Ownership also needs the manifest: a link of
// ours that someone re-pointed elsewhere is theirs now.
func (d *ucrDir) linkedFile(ctx context.Context, name string) (string, error) {
	e, ok := d.ents[name]
	if !ok || !e.IsLink {
		return "", nil
	}
	t, err := d.target(ctx, name)
	if err != nil {
		return "", err
	}
	if dir := path.Dir(t); dir != "." && dir != d.dir {
		return "", nil
	}
	if f := path.Base(t); strings.HasPrefix(f, caFilePrefix) && strings.HasSuffix(f, ".crt") {
		return f, nil
	}
	return "", nil
}

// plan picks, for each CA, the lowest <hash>.N that is free, already its
// own link, or a stale link of the operator's. OpenSSL probes .0, .1, ...
// and stops at the first missing name, so the links must have no gaps; a
// rotation whose two CAs share a subject gets .0 and .1. Entries of others
// are skipped, and one of theirs that already points at the CA's file
// (openssl rehash run by an administrator) is enough on its own.
func (d *ucrDir) plan(ctx context.Context, cas []trustCA, wantFiles map[string]bool) (keep map[string]bool, create []link, err error) {
	keep = map[string]bool{}
	for _, ca := range cas {
		for n := 0; ; n++ {
			name := fmt.Sprintf("%s.%d", ca.hash, n)
			if keep[name] {
				continue
			}
			if _, ok := d.ents[name]; !ok {
				keep[name] = true
				create = append(create, link{name, ca.file})
				break
			}
			f, err := d.linkedFile(ctx, name)
			if err != nil {
				return nil, nil, err
			}
			if !d.owned[name] {
				if f == ca.file {
					break // someone else's link already serves this CA
				}
				continue
			}
			if f == ca.file {
				keep[name] = true
				break
			}
			if f != "" && !wantFiles[f] {
				keep[name] = true // our stale link: point it at this CA
				create = append(create, link{name, ca.file})
				break
			}
		}
	}
	return keep, create, nil
}

// removeStale deletes the operator's links and files that no CA needs.
func (d *ucrDir) removeStale(ctx context.Context, keep, wantFiles map[string]bool, o *outcome) error {
	for _, name := range slices.Sorted(maps.Keys(d.owned)) {
		e, ok := d.ents[name]
		if !ok || keep[name] || wantFiles[name] {
			continue
		}
		var why string
		switch f, err := d.linkedFile(ctx, name); {
		case err != nil:
			return err
		case f != "":
			why = "link no longer needed"
		case !e.IsLink && !e.IsDir && strings.HasPrefix(name, caFilePrefix):
			why = "CA no longer in the bundle"
		default:
			continue // replaced by someone else since: theirs now
		}
		p := path.Join(d.dir, name)
		o.changes = append(o.changes, fmt.Sprintf("remove %s (%s)", p, why))
		if err := d.c.Remove(ctx, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func readManifest(ctx context.Context, c nodes.Conn, p string) (map[string]bool, error) {
	b, _, err := c.ReadFile(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if s := strings.TrimSpace(string(l)); s != "" && !strings.HasPrefix(s, "#") && !strings.Contains(s, "/") {
			m[s] = true
		}
	}
	return m, nil
}

func manifestText(names map[string]bool) []byte {
	var b strings.Builder
	b.WriteString("# Entries of this directory created by registry-operator; it never touches any other.\n")
	for _, n := range slices.Sorted(maps.Keys(names)) {
		b.WriteString(n + "\n")
	}
	return []byte(b.String())
}

func union(a, b map[string]bool) map[string]bool {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}
