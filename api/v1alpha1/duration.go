package v1alpha1

import (
	"encoding/json"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go duration text ("90s", "2160h").
// Decoding never fails: text that does not parse is kept in Raw, so that
// validation can report it with its field path next to every other error.
type Duration struct {
	time.Duration
	Raw string
}

// D builds a Duration from a time.Duration.
func D(d time.Duration) Duration { return Duration{Duration: d} }

// IsZero reports an unset duration (for omitempty).
func (d Duration) IsZero() bool { return d.Duration == 0 && d.Raw == "" }

// Invalid reports text that did not parse as a duration.
func (d Duration) Invalid() bool { return d.Raw != "" }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.Duration, d.Raw = 0, ""
	if n.Kind != yaml.ScalarNode {
		d.Raw = "<" + kindName(n.Kind) + ">"
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Value == "" {
		d.Raw = n.Value
		if d.Raw == "" {
			d.Raw = `""`
		}
		return nil
	}
	d.Duration = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) {
	if d.Raw != "" {
		return d.Raw, nil
	}
	return d.Duration.String(), nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d.Raw != "" {
		return json.Marshal(d.Raw)
	}
	return json.Marshal(d.Duration.String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Raw = s
		return nil
	}
	d.Duration, d.Raw = v, ""
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}
