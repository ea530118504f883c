package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Placement puts the registry's tls.crt and tls.key into app.certsHostPath
// on the agents the registry app may run on, for its hostPath volume. This
// is the only place the server key leaves the operator, so agents that stop
// being candidates lose the key again (only where the operator placed it).
//
// With the registry's config.yml and htpasswd (placement_config.go) it
// also places what the registry app runs from, so no secret travels in
// Marathon.
type Placement struct {
	nodeBase
	readFile     func(string) ([]byte, error)
	htpasswdCost int
	renders      configRenders
	patterns     hostPatterns
	htpasswdKept htpasswdKept
}

// NewPlacement returns the certificate placement reconciler.
func NewPlacement(d Deps, o NodeOptions) *Placement {
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.HtpasswdCost == 0 {
		o.HtpasswdCost = htpasswd.DefaultCost
	}
	return &Placement{nodeBase: newNodeBase(d, reconciler.Placement, o), readFile: o.ReadFile, htpasswdCost: o.HtpasswdCost}
}

// placedMarker records that the operator placed the key in a directory.
const placedMarker = ".registry-operator-placed"

// Reconcile implements manager.Reconciler for one node key.
func (p *Placement) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := p.Spec()
	if !spec.PlacementEnabled() {
		return manager.Result{}, nil
	}
	node, _, ok := p.Store.NodeConcern(key, reconciler.Placement)
	if !ok {
		return manager.Result{}, nil
	}
	pk := p.Store.PKI()
	if len(pk.ServerChain) == 0 || len(pk.ServerKey) == 0 {
		return manager.Result{}, nil // the PKI topic triggers a pass once there is a certificate
	}
	targets, err := p.targets(spec, node, pk)
	if err != nil {
		return manager.Result{}, manager.TerminalError(err)
	}
	defer func() {
		for _, t := range targets {
			t.app.setConfigPlaced(p.Store, key, t.files.placed)
			if t.app.kind == servedRegistry {
				p.Store.SetHtpasswdHeld(key, t.files.held)
			}
		}
	}()
	firstUse := false
	res, err := p.nodePass(ctx, reconciler.Placement, key, spec, func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error {
		o.want = pk.ServerHash
		anyMatch := false
		for _, t := range targets {
			anyMatch = anyMatch || t.match
			fu, err := p.placeFor(ctx, c, spec, node, pk, t, o)
			if err != nil {
				return err
			}
			firstUse = firstUse || fu
		}
		if !o.isPending() {
			// Every served app's directory holds the chain (or needs none):
			// the CertificatePlacement view covers the mirror too.
			o.carried = pk.ServerHash
			if anyMatch && pk.ServerHash == "" {
				o.carried = state.Hash(pk.ServerChain)
			}
		}
		return nil
	})
	if err == nil && firstUse {
		res.RequeueAfter = firstUseRequeue
	}
	return res, err
}

// placeTarget is one served app on one node for one pass.
type placeTarget struct {
	app       servedApp
	match     bool // the node may run the app (hostname constraints)
	byAddress bool // ... by its address alone
	files     *registryFiles
}

// targets matches the node against each served app and takes each config
// file from the round's render (placement_render.go).
func (p *Placement) targets(spec *v1alpha1.Spec, node state.Node, pk state.PKI) ([]*placeTarget, error) {
	var out []*placeTarget
	maint := p.Store.RegistryMaintenance()
	for _, a := range servedApps(spec) {
		t := &placeTarget{app: a, files: &registryFiles{}}
		if a.enabled {
			var err error
			if t.match, err = p.patterns.match(a.app.Constraints, node.Hostname, hostOnly(node.Address)); err != nil {
				return nil, err
			}
			t.byAddress, _ = p.patterns.match(a.app.Constraints, "", hostOnly(node.Address)) // same regexps: no error
			t.files.config, t.files.configErr = p.renders.render(a, spec, pk, maint, node.Address, p.readFile)
		}
		out = append(out, t)
	}
	return out, nil
}

// placeFor keeps one served app's files on the node: its certificate, key
// and config where the app may run, none (of the operator's) elsewhere.
// firstUse: the node's host key was accepted on this connection.
func (p *Placement) placeFor(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, node state.Node, pk state.PKI,
	t *placeTarget, o *outcome) (firstUse bool, err error) {
	dir := t.app.app.CertsHostPath
	mark := o.mark()
	if !t.match {
		if t.app.enabled {
			o.detail = joinDetail(o.detail, "not a candidate agent for the "+t.app.kind+" app (hostname constraints)")
		}
		t.files.held.NeedsNone = true
		// The config files first: removePlaced takes the marker that
		// says they are the operator's.
		if err := removePlacedRegistryFiles(ctx, c, dir, o); err != nil {
			return false, err
		}
		if err := removePlaced(ctx, c, dir, o); err != nil {
			return false, err
		}
		if !o.pendingSince(mark) {
			t.files.placed = t.files.config.Hash // needs none
		}
		return false, nil
	}
	if why := uncertainIdentity(c, node, t.byAddress, t.app.field); why != "" {
		// Not placed, and nothing placed earlier is removed: the
		// agent may well be a candidate; it only has not proven it.
		o.pending = true
		o.detail = joinDetail(o.detail, "identity not certain: "+why)
		// Without the key here the registry cannot serve from this
		// agent, so its htpasswd file holds no rotation back.
		t.files.held.NeedsNone = !t.byAddress
		return nodes.AcceptedOnFirstUse(c), nil
	}
	// The marker first: a pass interrupted after it leaves a key the
	// operator knows it owns (and removes), never an unmanaged one.
	marker := []byte("registry-operator placed tls.crt and tls.key here; it removes them when this agent stops being a candidate.\n")
	if err := syncFile(ctx, c, path.Join(dir, placedMarker), marker, 0o644, o); err != nil {
		return false, err
	}
	if err := syncFile(ctx, c, path.Join(dir, "tls.key"), pk.ServerKey, 0o600, o); err != nil {
		return false, err
	}
	if err := syncFile(ctx, c, path.Join(dir, "tls.crt"), pk.ServerChain, 0o644, o); err != nil {
		return false, err
	}
	if t.app.kind == servedMirror {
		return false, placeMirrorFiles(ctx, c, dir, t.files, mark, o)
	}
	return false, p.placeRegistryFiles(ctx, c, spec, dir, t.files, o)
}

// firstUseRequeue is how soon placement looks again at an agent whose
// host key was accepted on first use: its connection is closed once no
// pass uses it, and the next one checks the key now on record.
const firstUseRequeue = 5 * time.Second

// uncertainIdentity says why the server key must not go to node over c, or
// "" when its identity is certain. An agent's identity is its address (from
// discovery; the operator dials it and checks its host key against
// known_hosts) and the hostname it reports to Mesos itself, which any agent
// can set to anything. So the key goes only where the hostname constraints
// hold for the address alone (byAddress), and only over a connection whose
// host key was on record before it was made.
func uncertainIdentity(c nodes.Conn, node state.Node, byAddress bool, field string) string {
	ip := hostOnly(node.Address)
	switch {
	case !byAddress:
		return fmt.Sprintf("matches %s only by the hostname it reports (%s), not by its address %s; "+
			"the key is placed only where the address matches: list the address in the hostname constraint too "+
			"(for example LIKE %s|%s)", field, node.Hostname, ip, node.Hostname, regexp.QuoteMeta(ip))
	case nodes.AcceptedOnFirstUse(c):
		return "host key accepted on first use (hostKeyPolicy acceptNew); placed on the next pass once the key is on record"
	}
	return ""
}

// removePlaced deletes the key and certificate where the operator placed them.
func removePlaced(ctx context.Context, c nodes.Conn, dir string, o *outcome) error {
	if _, err := c.Stat(ctx, path.Join(dir, placedMarker)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, name := range []string{"tls.key", "tls.crt", placedMarker} {
		p := path.Join(dir, name)
		if _, err := c.Stat(ctx, p); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		o.changes = append(o.changes, "remove "+p+" (agent is no longer a registry candidate)")
		if err := c.Remove(ctx, p); err != nil {
			return err
		}
	}
	return nil
}
