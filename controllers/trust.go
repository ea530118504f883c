package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/manager"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Trust makes every agent's container runtimes trust the registry's CA
// bundle. Each runtime is one trustOutput; one pass per node covers all of
// them over the node's one SFTP channel. It never restarts a daemon for a
// CA: Docker, skopeo, podman, containerd and the Mesos fetcher read their
// trust on every connection. Only tls.mode insecure needs dockerd restarted
// (trust_insecure.go), and only trust.allowDockerRestart lets it do that.
type Trust struct {
	nodeBase
	outputs  map[string]func(*v1alpha1.TrustSpec) trustOutput
	restarts restartGate
	wants    trustWants
}

// NewTrust returns the node trust reconciler.
func NewTrust(d Deps, o NodeOptions) *Trust {
	return &Trust{nodeBase: newNodeBase(d, reconciler.Trust, o), outputs: map[string]func(*v1alpha1.TrustSpec) trustOutput{
		v1alpha1.RuntimeDocker: func(t *v1alpha1.TrustSpec) trustOutput {
			return &certsDirOutput{roots: t.CertsDirs, files: caFile}
		},
		v1alpha1.RuntimeContainers: func(*v1alpha1.TrustSpec) trustOutput {
			return &certsDirOutput{roots: []string{ContainersCertsDir}, files: caFile}
		},
		v1alpha1.RuntimeContainerd: func(*v1alpha1.TrustSpec) trustOutput {
			return &certsDirOutput{roots: []string{ContainerdCertsDir}, files: containerdFiles}
		},
		v1alpha1.RuntimeUCR: func(t *v1alpha1.TrustSpec) trustOutput {
			return &ucrOutput{dir: t.UCRCertsDir}
		},
	}, restarts: restartGate{pending: map[string]bool{}}}
}

// Where the runtimes other than Docker look for per-registry trust.
const (
	ContainersCertsDir = "/etc/containers/certs.d" // podman, skopeo, CRI-O
	ContainerdCertsDir = "/etc/containerd/certs.d"
)

// trustWant is what every output works from in one pass.
type trustWant struct {
	bundle []byte
	hash   string
	// cas are the bundle's certificates one by one, for the outputs that
	// keep one file per CA (UCR, the system store).
	cas []trustCA
	// names are the certs.d directory names clients may use for the
	// registry: "host:port", plus "host" when the port is 443.
	names []string
}

// trustOutput is one runtime's trust on a node.
type trustOutput interface {
	// sync makes the node match w, appending what it changes to o.changes.
	sync(ctx context.Context, c nodes.Conn, w *trustWant, o *outcome) error
}

// Reconcile implements manager.Reconciler for one node key.
func (t *Trust) Reconcile(ctx context.Context, key string) (manager.Result, error) {
	spec := t.Spec()
	if !spec.TrustEnabled() || spec.Registry == nil {
		return manager.Result{}, nil
	}
	if spec.TLS != nil && spec.TLS.Mode == v1alpha1.TLSInsecure {
		// No CA exists in this mode; the registry is trusted by name.
		return t.insecurePass(ctx, key, spec)
	}
	bundle := t.Store.Bundle()
	if len(bundle) == 0 {
		// Nothing to distribute yet; the PKI topic triggers the next pass.
		return t.record(key, spec, "waiting for the certificate reconciler to publish a CA bundle")
	}
	needCAs := slices.Contains(spec.Trust.Runtimes, v1alpha1.RuntimeUCR) || spec.Trust.SystemStore
	w, err := t.wants.get(spec, bundle, needCAs)
	if err != nil {
		return manager.Result{}, err
	}
	var outs []trustOutput
	var unsupported []string
	for _, r := range spec.Trust.Runtimes {
		mk, ok := t.outputs[r]
		if !ok {
			unsupported = append(unsupported, r)
			continue
		}
		outs = append(outs, mk(spec.Trust))
	}
	if spec.Trust.SystemStore {
		outs = append(outs, systemStoreOutput{})
	}
	waiting := false
	res, err := t.nodePass(ctx, reconciler.Trust, key, spec, func(ctx context.Context, c nodes.Conn, spec *v1alpha1.Spec, o *outcome) error {
		o.want = w.hash
		if len(unsupported) > 0 {
			o.detail = fmt.Sprintf("runtimes not managed by this version: %s", strings.Join(unsupported, ", "))
		}
		for _, out := range outs {
			if err := out.sync(ctx, c, w, o); err != nil {
				return err
			}
		}
		// After the CA is in place: what tls.mode insecure added to
		// daemon.json leaves it, so dockerd verifies the registry again.
		var err error
		if waiting, err = t.leaveInsecureDocker(ctx, c, spec, o); err != nil {
			return err
		}
		if !o.isPending() {
			o.carried = w.hash
		}
		return nil
	})
	if err == nil && waiting {
		res.RequeueAfter = restartWaitRequeue
	}
	return res, err
}

// trustWants keeps the trustWant of the last bundle and addresses: every
// node's pass in a round works from the same one, so the bundle is hashed
// and split, and the addresses parsed, once per change rather than once
// per node.
type trustWants struct {
	mu               sync.Mutex
	bundle           []byte
	registry, mirror string
	cas              bool
	w                *trustWant
}

// get returns the trustWant for bundle and the spec's addresses; needCAs
// asks for the bundle's certificates one by one too. The trustWant is
// shared: outputs only read it.
func (c *trustWants) get(spec *v1alpha1.Spec, bundle []byte, needCAs bool) (*trustWant, error) {
	registry, mirror := spec.Registry.Address, spec.MirrorAddress()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil && c.registry == registry && c.mirror == mirror && c.cas == needCAs && bytes.Equal(c.bundle, bundle) {
		return c.w, nil
	}
	names, err := trustedDirNames(spec)
	if err != nil {
		return nil, manager.TerminalError(err)
	}
	w := &trustWant{bundle: bundle, hash: state.Hash(bundle), names: names}
	if needCAs {
		if w.cas, err = splitBundle(bundle); err != nil {
			return nil, fmt.Errorf("trust: the published CA bundle: %w", err)
		}
	}
	c.bundle, c.registry, c.mirror, c.cas, c.w = bytes.Clone(bundle), registry, mirror, needCAs, w
	return w, nil
}

// trustedDirNames are the certs.d names of every endpoint that serves the
// CA's certificate: the registry and, when enabled, the mirror.
func trustedDirNames(spec *v1alpha1.Spec) ([]string, error) {
	names, err := v1alpha1.RegistryDirNames(spec.Registry.Address)
	if err != nil {
		return nil, fmt.Errorf("registry.address: %w", err)
	}
	if a := spec.MirrorAddress(); a != "" {
		more, err := v1alpha1.RegistryDirNames(a)
		if err != nil {
			return nil, fmt.Errorf("mirror.address: %w", err)
		}
		names = append(names, more...)
	}
	return names, nil
}

// record stores a concern for a node without contacting it.
func (t *Trust) record(key string, spec *v1alpha1.Spec, detail string) (manager.Result, error) {
	if _, ok := t.Store.Node(key); !ok {
		return manager.Result{}, nil
	}
	prev, _ := t.Store.Node(key)
	c := prev.Concerns[reconciler.Trust]
	c.InSync, c.Detail, c.Changes, c.Error, c.Checked = false, detail, nil, "", t.Clock.Now()
	t.Store.SetConcern(key, reconciler.Trust, c)
	t.Metrics.SetOutOfSync(reconciler.Trust, key, true)
	t.updateNodesGauge(spec)
	return manager.Result{}, nil
}
