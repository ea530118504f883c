package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/registry-operator/registry-operator/internal/state"
)

// Render writes st for a terminal: the verdict and what is out of sync
// first, then certificates, apps, the probe, reconcilers and nodes. Text
// that came from nodes or Marathon is stripped of control characters, so an
// error message cannot drive the terminal.
func Render(w io.Writer, st Status) error {
	r := &renderer{w: w, now: st.GeneratedAt}
	r.header(st)
	r.config(st.Config)
	r.certificates(st.Certificates)
	r.pullPassword(st.PullPassword)
	r.maintenance(st.Maintenance)
	r.apps(st.Apps, st.Probe)
	r.reconcilers(st.Reconcilers)
	r.nodes(st)
	return r.err
}

type renderer struct {
	w   io.Writer
	now time.Time
	err error
}

func (r *renderer) printf(format string, args ...any) {
	if r.err != nil {
		return
	}
	_, r.err = fmt.Fprintf(r.w, format, args...)
}

// table writes rows aligned in columns, two spaces apart.
func (r *renderer) table(header []string, rows [][]string) {
	if r.err != nil {
		return
	}
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(row, "\t"))
	}
	if r.err = tw.Flush(); r.err != nil {
		return
	}
	// Padding before an empty last column is trailing space: drop it.
	for line := range strings.Lines(buf.String()) {
		r.printf("%s\n", strings.TrimRight(line, " \n"))
	}
}

func (r *renderer) header(st Status) {
	c := st.Config
	role := "leader"
	if !c.IsLeader {
		role = "follower, leader " + orDefault(clean(c.Leader), "unknown")
	}
	r.printf("registry-operator")
	if c.Instance != "" {
		r.printf(" %s", clean(c.Instance))
	}
	r.printf(" (%s)", role)
	if c.Mode != "" {
		r.printf(", mode %s", clean(c.Mode))
	}
	if c.Version != "" {
		r.printf(", version %s", clean(c.Version))
	}
	r.printf("\nstatus at %s\n\n", formatTime(st.GeneratedAt))
	if st.InSync {
		r.printf("IN SYNC: the cluster matches the spec.\n")
		return
	}
	r.printf("OUT OF SYNC: %d item(s)\n", len(st.OutOfSync))
	for _, it := range st.OutOfSync {
		r.printf("  - %s\n", clean(it.String()))
	}
}

func (r *renderer) config(c ConfigInfo) {
	r.printf("\nConfig %s, loaded %s (%s)\n", orDefault(clean(c.Path), "-"), formatTime(c.LoadedAt), relative(c.LoadedAt, r.now))
	if c.LastReloadError != "" {
		r.printf("  last reload REJECTED, older spec in force: %s\n", clean(c.LastReloadError))
	}
}

func (r *renderer) certificates(p state.PKI) {
	ready := "ready"
	if !p.Ready {
		ready = "NOT READY"
		if p.Reason != "" {
			ready += " (" + clean(p.Reason) + ")"
		}
	}
	r.printf("\nCertificates: %s, mode %s, rotation %s, generation %d\n",
		ready, orDefault(clean(p.Mode), "-"), orDefault(clean(p.Rotation), "none"), p.Generation)
	for _, pending := range p.Pending {
		r.printf("  pending: %s\n", clean(pending))
	}
	rows := [][]string{r.certRow("server", p.Server)}
	for _, ca := range p.CAs {
		rows = append(rows, r.certRow("CA", ca))
	}
	r.table([]string{"CERT", "SUBJECT", "SERIAL", "EXPIRES", "RENEWAL", "STATE"}, rows)
}

func (r *renderer) pullPassword(p *PullPassword) {
	if p == nil {
		return
	}
	ready := "ready"
	if !p.Ready {
		ready = "NOT READY"
		if p.Reason != "" {
			ready += " (" + clean(p.Reason) + ")"
		}
	}
	r.printf("\nPull password: %s, user %s, generation %d, next rotation %s\n", ready, orDefault(clean(p.User), "-"),
		p.Generation, when(p.NextRotation, r.now))
	r.printf("  valid users: %s\n", orDefault(clean(strings.Join(p.ValidUsers, ", ")), "none"))
	if p.Phase != "" {
		r.printf("  %s\n", clean(p.Phase))
	}
	if len(p.Lagging) > 0 {
		overdue := ""
		if p.Overdue {
			overdue = ", OVERDUE"
		}
		r.printf("  agents without the current credentials%s: %s\n", overdue, clean(strings.Join(p.Lagging, ", ")))
	}
	for _, pending := range p.Pending {
		r.printf("  pending: %s\n", clean(pending))
	}
}

func (r *renderer) certRow(role string, c state.CertInfo) []string {
	return []string{role, orDefault(clean(c.Subject), "-"), short(clean(c.Serial)),
		when(c.NotAfter, r.now), when(c.RenewalTime, r.now), CertState(c, r.now)}
}

func (r *renderer) apps(apps []state.App, p state.Probe) {
	r.printf("\nApps:\n")
	if len(apps) == 0 {
		r.printf("  none observed\n")
	} else {
		var rows [][]string
		for _, a := range apps {
			st := "in sync"
			if p := appProblem(a); p != "" {
				st = p
			}
			rows = append(rows, []string{clean(a.ID), fmt.Sprintf("%d/%d/%d", a.Healthy, a.Running, a.Desired),
				orDefault(clean(strings.Join(a.Hosts, ",")), "-"), when(a.Checked, r.now), trunc(clean(st))})
		}
		r.table([]string{"APP", "HEALTHY/RUNNING/DESIRED", "HOSTS", "CHECKED", "STATE"}, rows)
	}
	switch {
	case p.Checked.IsZero():
		r.printf("Probe: not run yet\n")
	case p.Success:
		r.printf("Probe: success in %s, serial %s, %s\n", p.Duration.Round(time.Millisecond), short(clean(p.Serial)), when(p.Checked, r.now))
	default:
		r.printf("Probe: FAILED after %s, %s: %s\n", p.Duration.Round(time.Millisecond), when(p.Checked, r.now), clean(p.Error))
	}
}

func (r *renderer) reconcilers(recs []state.ReconcilerStatus) {
	r.printf("\nReconcilers:\n")
	var rows [][]string
	for _, rec := range recs {
		res := orDefault(rec.LastResult, "not run yet")
		if !rec.Enabled {
			res = "off"
		}
		rows = append(rows, []string{rec.Name, res, when(rec.LastRun, r.now), when(rec.LastSuccess, r.now), trunc(clean(rec.LastError))})
	}
	r.table([]string{"NAME", "RESULT", "LAST RUN", "LAST SUCCESS", "ERROR"}, rows)
}

func (r *renderer) nodes(st Status) {
	r.printf("\nNodes: %d (%d in sync, %d out of sync, %d unreachable)\n", len(st.Nodes),
		st.NodeCounts[NodeInSync], st.NodeCounts[NodeOutOfSync], st.NodeCounts[NodeUnreachable])
	if len(st.Nodes) == 0 {
		return
	}
	var rows [][]string
	for _, n := range st.Nodes {
		row := []string{clean(n.Address), strings.ReplaceAll(n.State, "_", " ")}
		for _, rec := range nodeConcerns {
			c := concernCell(n, rec)
			row = append(row, c.Text)
		}
		row = append(row, when(n.LastContact, r.now), trunc(clean(n.LastError)))
		rows = append(rows, row)
	}
	r.table([]string{"ADDRESS", "STATE", "TRUST", "CONNTRACK", "PLACEMENT", "CREDENTIALS", "LAST CONTACT", "LAST ERROR"}, rows)
}

// when prints a time with its distance from now, or "never".
func when(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return formatTime(t) + " (" + relative(t, now) + ")"
}

// clean makes remote text safe and one line for a terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// trunc keeps table cells short enough for a terminal; the list of
// out-of-sync items and /api/status carry the whole text.
func trunc(s string) string {
	const max = 100
	if len([]rune(s)) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}
