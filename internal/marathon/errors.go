package marathon

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kind classifies what a failed Marathon call means to a reconciler.
type Kind int

// Kinds of failure.
const (
	// KindOther: an answer the operator does not expect (401/403, a body it
	// cannot read). Back off and show it.
	KindOther Kind = iota
	// KindNotFound: 404, the app (or deployment) does not exist.
	KindNotFound
	// KindLocked: 409 with `deployments`, a running deployment holds the app.
	KindLocked
	// KindConflict: 409 without `deployments`, e.g. the app already exists.
	KindConflict
	// KindInvalid: 400/422, Marathon rejected the definition. Retrying the
	// same body cannot help.
	KindInvalid
	// KindUnavailable: 5xx, a transport error or a timeout. Marathon may be
	// fine a moment later; nothing may be concluded about the app.
	KindUnavailable
)

func (k Kind) String() string {
	switch k {
	case KindNotFound:
		return "not found"
	case KindLocked:
		return "locked"
	case KindConflict:
		return "conflict"
	case KindInvalid:
		return "invalid"
	case KindUnavailable:
		return "unavailable"
	}
	return "error"
}

// Detail is one entry of a 422 body's `details`.
type Detail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// Error is a failed Marathon call.
type Error struct {
	Kind    Kind
	Method  string
	Path    string
	Status  int // 0 when no HTTP answer arrived
	Message string
	// Deployments holds the ids of the deployments locking the app (409).
	Deployments []string
	// Details holds Marathon's validation errors (422/400).
	Details []Detail
	Err     error // transport error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "marathon %s %s: %s", e.Method, e.Path, e.Kind)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Deployments) > 0 {
		b.WriteString(" [deployments " + strings.Join(e.Deployments, ",") + "]")
	}
	for _, d := range e.DetailLines() {
		b.WriteString("; " + d)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// DetailLines renders Details as "path: error" lines.
func (e *Error) DetailLines() []string {
	var out []string
	for _, d := range e.Details {
		out = append(out, d.Path+": "+strings.Join(d.Errors, ", "))
	}
	return out
}

// KindOf returns the kind of err, KindOther for errors not from Marathon.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindOther
}

// IsNotFound, IsLocked, IsInvalid and IsUnavailable test KindOf(err).
func IsNotFound(err error) bool    { return KindOf(err) == KindNotFound }
func IsLocked(err error) bool      { return KindOf(err) == KindLocked }
func IsInvalid(err error) bool     { return KindOf(err) == KindInvalid }
func IsUnavailable(err error) bool { return KindOf(err) == KindUnavailable }

// classify builds the Error for an HTTP answer that was not 2xx.
func classify(method, path string, status int, body []byte) *Error {
	e := &Error{Method: method, Path: path, Status: status}
	var b struct {
		Message     string                `json:"message"`
		Deployments []struct{ ID string } `json:"deployments"`
		Details     json.RawMessage       `json:"details"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Message = b.Message
		for _, d := range b.Deployments {
			e.Deployments = append(e.Deployments, d.ID)
		}
		// details is an array of {path, errors} on validation errors but a
		// plain string on malformed JSON.
		if json.Unmarshal(b.Details, &e.Details) != nil {
			var s string
			if json.Unmarshal(b.Details, &s) == nil && s != "" {
				e.Details = []Detail{{Path: "/", Errors: []string{s}}}
			}
		}
	} else if t := strings.TrimSpace(string(body)); t != "" && len(t) < 300 {
		e.Message = t
	}
	switch {
	case status == 404:
		e.Kind = KindNotFound
	case status == 409 && len(e.Deployments) > 0:
		e.Kind = KindLocked
	case status == 409:
		e.Kind = KindConflict
	case status == 400 || status == 422:
		e.Kind = KindInvalid
	case status >= 500:
		e.Kind = KindUnavailable
	default:
		e.Kind = KindOther
	}
	return e
}
