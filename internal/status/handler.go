package status

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/registry-operator/registry-operator/internal/state"
)

//go:embed page.html
var pageSource string

// APIPath is where the JSON status is served.
const APIPath = "/api/status"

type handler struct {
	store *state.Store
	cfg   ConfigInfoFunc
	log   logr.Logger
	now   func() time.Time
	page  *template.Template
	json  sync.Pool // of *jsonBuffers
}

// NewHandler serves the status page at "/" and its JSON at /api/status,
// from the store and cfg only. Mount it at "/" (or at both paths) next to
// /metrics and the health endpoints; other paths get 404.
func NewHandler(store *state.Store, cfg ConfigInfoFunc, log logr.Logger) http.Handler {
	return newHandler(store, cfg, log, time.Now)
}

func newHandler(store *state.Store, cfg ConfigInfoFunc, log logr.Logger, now func() time.Time) *handler {
	if cfg == nil {
		cfg = func() ConfigInfo { return ConfigInfo{IsLeader: true} }
	}
	return &handler{store: store, cfg: cfg, log: log, now: now, page: parsePage()}
}

func parsePage() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"time":      formatTime,
		"rel":       relative,
		"short":     short,
		"join":      strings.Join,
		"certState": CertState,
		"certClass": certClass,
		"concern":   concernCell,
		"dur":       func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"list":      func(v ...any) []any { return v },
		"bytes":     Bytes,
		"usedPct":   StorageUsedPercent,
	}).Parse(pageSource))
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != APIPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	st := Build(h.store, h.cfg(), h.now().UTC())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path == APIPath {
		h.serveJSON(w, st)
		return
	}
	h.servePage(w, st)
}

// jsonBuffers holds the compact and the indented text of a status reply
// between requests: at 1000 agents they are about 0.7 and 1.9 MB, which
// json.MarshalIndent would allocate afresh (with a copy of the compact
// text) for every poll. A sync.Pool lets the collector take them back
// when nobody polls.
type jsonBuffers struct{ compact, indented bytes.Buffer }

func (h *handler) serveJSON(w http.ResponseWriter, st Status) {
	b, _ := h.json.Get().(*jsonBuffers)
	if b == nil {
		b = new(jsonBuffers)
	}
	defer h.json.Put(b)
	b.compact.Reset()
	b.indented.Reset()
	// The Encoder marshals in encoding/json's own pooled state and ends
	// the value with a newline, which Indent keeps.
	err := json.NewEncoder(&b.compact).Encode(st)
	if err == nil {
		err = json.Indent(&b.indented, b.compact.Bytes(), "", "  ")
	}
	if err != nil {
		h.log.Error(err, "encoding status failed")
		http.Error(w, "encoding status failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.indented.Bytes())
}

func (h *handler) servePage(w http.ResponseWriter, st Status) {
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, st); err != nil {
		h.log.Error(err, "rendering status page failed")
		http.Error(w, "rendering status page failed", http.StatusInternalServerError)
		return
	}
	// The page has no scripts: forbid them outright, allow the inline style.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func certClass(c state.CertInfo, now time.Time) string {
	switch CertState(c, now) {
	case CertValid:
		return "ok"
	case CertRenewalDue:
		return "warn"
	}
	return "bad"
}

// cell is one node concern as the node table shows it.
type cell struct {
	Class, Text, Detail string
}

func concernCell(n Node, reconciler string) cell {
	c, ok := n.Concerns[reconciler]
	if !ok {
		return cell{Class: "muted", Text: "—"}
	}
	out := cell{Class: "ok", Text: "in sync", Detail: c.Detail}
	if !c.InSync {
		out = cell{Class: "bad", Text: "out of sync", Detail: concernReason(c)}
	}
	if !n.Reachable {
		// What we last saw; the node has not answered since.
		out.Class = "muted"
		out.Text += " (last seen)"
	}
	return out
}
