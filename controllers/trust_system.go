package controllers

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

// osTrustStore is a distribution's system CA store: where local anchors go,
// the command that rebuilds the store from them, and the bundle it builds
// (read to see whether a rebuild is still owed).
type osTrustStore struct {
	name, tool, dir, bundle string
	// update and updateFresh are fixed scripts (no value reaches them);
	// the *Cmd fields say what they run, for the plan.
	update, updateFresh       string
	updateCmd, updateFreshCmd string
}

const pathPrefix = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"

var osTrustStores = []osTrustStore{
	{
		name: "Debian/Ubuntu", tool: "/usr/sbin/update-ca-certificates",
		dir: "/usr/local/share/ca-certificates", bundle: "/etc/ssl/certs/ca-certificates.crt",
		update: pathPrefix + "exec update-ca-certificates 2>&1", updateCmd: "update-ca-certificates",
		// A removed local anchor leaves its /etc/ssl/certs link behind
		// unless the links are rebuilt.
		updateFresh: pathPrefix + "exec update-ca-certificates --fresh 2>&1", updateFreshCmd: "update-ca-certificates --fresh",
	},
	{
		name: "RHEL/CentOS", tool: "/usr/bin/update-ca-trust",
		dir: "/etc/pki/ca-trust/source/anchors", bundle: "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		update: pathPrefix + "exec update-ca-trust extract 2>&1", updateCmd: "update-ca-trust extract",
		updateFresh: pathPrefix + "exec update-ca-trust extract 2>&1", updateFreshCmd: "update-ca-trust extract",
	},
}

// systemStoreOutput adds the CAs to the OS store (trust.systemStore), for
// clients on the agent such as curl. Its files are named caFilePrefix...;
// the operator removes only files with that prefix. The rebuild command
// runs only when a file changed or the built bundle lacks a CA, so a
// steady-state pass starts no process.
type systemStoreOutput struct{}

func (systemStoreOutput) sync(ctx context.Context, c nodes.Conn, w *trustWant, o *outcome) error {
	st, err := detectTrustStore(ctx, c)
	if err != nil {
		return err
	}
	changed, removed := false, false
	want := map[string]bool{}
	for _, ca := range w.cas {
		want[ca.file] = true
		n := len(o.changes)
		if err := syncFile(ctx, c, path.Join(st.dir, ca.file), ca.pem, 0o644, o); err != nil {
			return err
		}
		changed = changed || len(o.changes) > n
	}
	ents, err := c.ReadDir(ctx, st.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if e.IsDir || e.IsLink || want[e.Name] || !strings.HasPrefix(e.Name, caFilePrefix) || !strings.HasSuffix(e.Name, ".crt") {
			continue
		}
		p := path.Join(st.dir, e.Name)
		o.changes = append(o.changes, fmt.Sprintf("remove %s (CA no longer in the bundle)", p))
		changed, removed = true, true
		if err := c.Remove(ctx, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if !changed {
		built, _, err := c.ReadFile(ctx, st.bundle)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		changed = !bundleHoldsAll(built, w.cas)
	}
	if !changed {
		return nil
	}
	script, cmd := st.update, st.updateCmd
	if removed {
		script, cmd = st.updateFresh, st.updateFreshCmd
	}
	o.changes = append(o.changes, fmt.Sprintf("run %s (%s system CA store)", cmd, st.name))
	if out, err := c.Run(ctx, script); err != nil && !errors.Is(err, nodes.ErrNotApplied) {
		return fmt.Errorf("trust.systemStore: %s: %w (output: %s)", cmd, err, lastLine(out))
	}
	return nil
}

// detectTrustStore finds which distribution's store the node has.
func detectTrustStore(ctx context.Context, c nodes.Conn) (osTrustStore, error) {
	for _, s := range osTrustStores {
		if _, err := c.Stat(ctx, s.tool); err == nil {
			return s, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return osTrustStore{}, err
		}
	}
	return osTrustStore{}, errors.New("trust.systemStore: the node has neither update-ca-certificates (Debian/Ubuntu: package ca-certificates) " +
		"nor update-ca-trust (RHEL/CentOS: package ca-certificates); install it or set trust.systemStore: false")
}

// bundleHoldsAll reports whether the built bundle has every CA.
func bundleHoldsAll(bundle []byte, cas []trustCA) bool {
	have := map[string]bool{}
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		have[string(b.Bytes)] = true
	}
	for _, ca := range cas {
		b, _ := pem.Decode(ca.pem)
		if b == nil || !have[string(b.Bytes)] {
			return false
		}
	}
	return true
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(b, nil))), "\n")
	return lines[len(lines)-1]
}
