package controllers

import (
	"context"
	"path"

	"github.com/registry-operator/registry-operator/internal/marathon"
	"github.com/registry-operator/registry-operator/internal/nodes"
)

// outcomeMark is where an outcome stood before one served app's files, so
// that app's own completeness is told apart from the others' on the node.
type outcomeMark struct {
	pending  bool
	recorded int
}

func (o *outcome) mark() outcomeMark {
	m := outcomeMark{pending: o.pending}
	if o.rec != nil {
		m.recorded = len(o.rec.Recorded())
	}
	return m
}

// pendingSince reports whether something became pending after m.
func (o *outcome) pendingSince(m outcomeMark) bool {
	if o.pending && !m.pending {
		return true
	}
	return o.rec != nil && len(o.rec.Recorded()) > m.recorded
}

// placeMirrorFiles writes the mirror's config.yml (0600: it may hold the
// upstream's password). The mirror has no htpasswd: it serves pulls only.
// A config that cannot be rendered (an unreadable credentials file) is
// shown, not returned, so the node's pass still completes the registry's.
func placeMirrorFiles(ctx context.Context, c nodes.Conn, dir string, f *registryFiles, m outcomeMark, o *outcome) error {
	if f.configErr != nil {
		// The mirror app reconciler reports it too, and waits; the
		// registry's files on this node do not wait for the mirror's.
		o.detail = joinDetail(o.detail, "the mirror's config.yml is not placed: "+f.configErr.Error())
		return nil
	}
	if err := syncFile(ctx, c, path.Join(dir, marathon.ConfigFile), f.config.File, 0o600, o); err != nil {
		return err
	}
	if !o.pendingSince(m) {
		f.placed = f.config.Hash
	}
	return nil
}
