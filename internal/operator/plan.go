package operator

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/config"
	"github.com/registry-operator/registry-operator/internal/metrics"
	"github.com/registry-operator/registry-operator/internal/reconciler"
	"github.com/registry-operator/registry-operator/internal/state"
)

// Plan runs every enabled reconciler once in report mode (nothing is
// changed) and writes what would change. It returns ErrChangesPending when
// something would, and an error when something could not be checked.
func Plan(ctx context.Context, opts Options, w io.Writer) error {
	m := metrics.New(metrics.BuildInfo{Version: opts.Version})
	src, err := config.Open(opts.ConfigPath, m, opts.Log.WithName("config"))
	if err != nil {
		return err
	}
	// The same reconcilers, forced into report mode: the plan is exactly
	// what a report-mode pass detects.
	reg := *src.Registry()
	reg.Spec.Reconcile.Mode = v1alpha1.ModeReport
	opts.Plan = true
	o, err := build(opts, src, func() *v1alpha1.Spec { return &reg.Spec }, m)
	if err != nil {
		return err
	}
	defer o.Close()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	out, runErr := o.mgr.RunOnce(ctx)
	var errs []string
	for _, oc := range out {
		if oc.Err != nil {
			errs = append(errs, fmt.Sprintf("%s %s: %v", oc.Reconciler, oc.Key, oc.Err))
		}
	}
	if runErr != nil {
		errs = append(errs, runErr.Error())
	}
	changes := RenderPlan(w, &reg, o.store, errs)
	switch {
	case len(errs) > 0:
		return fmt.Errorf("plan incomplete: %d check(s) failed", len(errs))
	case changes > 0:
		return ErrChangesPending
	}
	return nil
}

// RenderPlan writes a plan from the state a report-mode pass left and
// returns the number of pending changes.
func RenderPlan(w io.Writer, reg *v1alpha1.Registry, s *state.Store, errs []string) int {
	n := 0
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	spec := &reg.Spec
	p("Plan for registry %q (mode %s, interval %s)", reg.Metadata.Name, spec.Reconcile.Mode, spec.Reconcile.Interval.Duration)
	p("")
	section := func(title string, on bool) bool {
		if !on {
			p("%s: disabled", title)
			return false
		}
		p("%s:", title)
		return true
	}
	if section("Certificates", spec.TLSEnabled()) {
		pk := s.PKI()
		for _, c := range pk.Pending {
			p("  ~ %s", c)
			n++
		}
		if len(pk.Pending) == 0 && pk.Ready {
			p("  = in sync (server serial %s, expires %s)", pk.Server.Serial, pk.Server.NotAfter.Format("2006-01-02"))
		}
		if pk.Reason != "" && !pk.Ready {
			p("  ! %s", pk.Reason)
		}
	}
	if section("Pull password", spec.CredentialsEnabled()) {
		n += renderPullPassword(p, s.PullSecret())
	}
	nodes := s.Nodes()
	if section("Nodes", spec.NodesEnabled()) {
		if len(nodes) == 0 {
			p("  (no agents known)")
		}
		for _, nd := range nodes {
			var lines []string
			for _, name := range reconciler.Node() {
				c, ok := nd.Concerns[name]
				if !ok {
					continue
				}
				for _, ch := range c.Changes {
					lines = append(lines, fmt.Sprintf("    ~ %s: %s", name, ch))
					n++
				}
				if c.Error != "" {
					lines = append(lines, fmt.Sprintf("    ! %s: %s", name, c.Error))
				}
			}
			state := "in sync"
			switch {
			case !nd.Reachable && nd.LastError != "":
				state = "unreachable: " + nd.LastError
			case len(lines) > 0:
				state = "changes"
			}
			p("  %s (%s): %s", nd.Address, nd.Source, state)
			for _, l := range lines {
				p("%s", l)
			}
		}
	}
	if section("Marathon apps", spec.AppEnabled() || spec.UIEnabled()) {
		apps := s.Apps()
		if len(apps) == 0 {
			p("  (no app observed)")
		}
		for _, a := range apps {
			switch {
			case !a.Exists && a.LastError == "":
				p("  + %s: would be created", a.ID)
				n++
			case len(a.Diff) > 0:
				p("  ~ %s:", a.ID)
				for _, d := range a.Diff {
					p("      %s", d)
					n++
				}
			case a.LastError != "":
				p("  ! %s: %s", a.ID, a.LastError)
			default:
				p("  = %s: in sync (%d/%d healthy)", a.ID, a.Healthy, a.Desired)
			}
		}
	}
	if section("Maintenance", spec.MaintenanceEnabled()) {
		n += renderMaintenance(p, s.Maintenance())
	}
	if len(errs) > 0 {
		p("")
		p("Errors (these parts could not be checked):")
		for _, e := range errs {
			p("  ! %s", strings.TrimSpace(e))
		}
	}
	p("")
	p("%d change(s) pending, %d error(s).", n, len(errs))
	return n
}

// renderPullPassword writes the pull password's part of a plan: what a
// report-mode pass would do, or where it stands. It names users and
// generations, never a password. It returns the number of changes.
func renderPullPassword(p func(string, ...any), ps state.PullSecret) int {
	for _, c := range ps.Pending {
		p("  ~ %s", c)
	}
	switch {
	case !ps.Ready && ps.Reason != "":
		p("  ! %s", ps.Reason)
	case len(ps.Pending) == 0 && ps.Ready:
		p("  = in sync (user %s, next rotation %s)", ps.Current.Name, ps.NextRotation.UTC().Format("2006-01-02"))
	}
	if len(ps.Lagging) > 0 {
		p("  . agents without the current credentials: %s", strings.Join(ps.Lagging, ", "))
	}
	return len(ps.Pending)
}
