// Package secret holds the string type for passwords and other secrets the
// operator handles (the registry's HTTP secret, pull passwords, users'
// passwords).
//
// A Value prints as "[redacted]" whatever the verb (%v, %s, %q, %x, %#v, a
// struct holding it printed with %+v), as a logr value and as JSON. Code
// that needs the secret itself converts it explicitly with string(v) or
// Reveal, so a secret reaches a log line, a status page or an error only
// by someone writing that conversion on purpose.
package secret

import (
	"fmt"
	"io"
)

// Redacted is what a Value shows instead of itself.
const Redacted = "[redacted]"

// Value is a secret string.
type Value string

// Reveal returns the secret itself.
func (v Value) Reveal() string { return string(v) }

// Empty reports whether no secret is set, without revealing it.
func (v Value) Empty() bool { return v == "" }

// Format implements fmt.Formatter for every verb, so no format string can
// print the secret.
func (v Value) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalLog implements logr.Marshaler.
func (v Value) MarshalLog() any { return Redacted }

// MarshalJSON keeps the secret out of any JSON a Value ends up in (status,
// plans, structured logs). State that must persist the secret uses a plain
// string field of its own.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
