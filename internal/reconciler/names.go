// Package reconciler names the operator's reconcilers. The names are keys of
// the manager's queues, the `reconciler` label of every metric, the concern
// names a node carries in the state store and the rows of the status page,
// so they are defined once, here, and nowhere else.
package reconciler

const (
	Certificates = "certificates"
	Discovery    = "discovery"
	Trust        = "trust"
	Conntrack    = "conntrack"
	Placement    = "placement"
	App          = "app"
	// PullSecret generates and rotates the registry's pull password (one
	// cluster-wide key); Credentials keeps it on every agent (one key per node).
	PullSecret  = "pullsecret"
	Credentials = "credentials"
	// Maintenance runs scheduled garbage collection inside a read-only
	// window (one cluster-wide key).
	Maintenance = "maintenance"
)

// All lists every reconciler in the order the status page shows them.
func All() []string {
	return []string{Certificates, PullSecret, Discovery, Trust, Conntrack, Placement, Credentials, App, Maintenance}
}

// Node lists the reconcilers that run once per node.
func Node() []string { return []string{Trust, Conntrack, Placement, Credentials} }
