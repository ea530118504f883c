package pullsecret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// FileName is the state's entry in the PKI state set. The ".key" suffix
// gets it the private keys' protection in both stores: mode 0600 in the
// state directory, the digest ACL in ZooKeeper.
const FileName = "pull-password.key"

// FormatVersion is the serialized form's version.
const FormatVersion = 1

// minPasswordLen refuses stored passwords too short to be ones this
// package generated.
const minPasswordLen = 16

type wireState struct {
	Version     int             `json:"version"`
	Current     wireCredential  `json:"current"`
	Previous    *wireCredential `json:"previous,omitempty"`
	Distributed time.Time       `json:"distributed,omitzero"`
}

// wireCredential holds the password as a plain string: secret.Value would
// write itself redacted.
type wireCredential struct {
	Generation int64     `json:"generation"`
	Password   string    `json:"password"`
	Created    time.Time `json:"created"`
}

func toWire(c Credential) wireCredential {
	return wireCredential{Generation: c.Generation, Password: c.Password.Reveal(), Created: c.Created.UTC().Round(0)}
}

func fromWire(c wireCredential) Credential {
	return Credential{Generation: c.Generation, Password: secret.Value(c.Password), Created: c.Created}
}

// Marshal returns s as the JSON stored under FileName. Times are written in
// UTC, so equal states give equal bytes.
func Marshal(s State) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	w := wireState{Version: FormatVersion, Current: toWire(s.Current), Distributed: s.Distributed.UTC().Round(0)}
	if s.Previous != nil {
		p := toWire(*s.Previous)
		w.Previous = &p
	}
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode pull password state: %w", err)
	}
	return append(b, '\n'), nil
}

// Unmarshal reads what Marshal wrote. Its errors say what is wrong and
// never quote the content.
func Unmarshal(b []byte) (State, error) {
	var w wireState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return State{}, fmt.Errorf("%s: %s", FileName, describe(err))
	}
	if dec.More() {
		return State{}, fmt.Errorf("%s: data after the JSON object", FileName)
	}
	switch {
	case w.Version == 0:
		return State{}, fmt.Errorf("%s: no version field", FileName)
	case w.Version > FormatVersion:
		return State{}, fmt.Errorf("%s: format version %d, newer than this operator's %d: upgrade the operator", FileName, w.Version, FormatVersion)
	case w.Version != FormatVersion:
		return State{}, fmt.Errorf("%s: unknown format version %d", FileName, w.Version)
	}
	s := State{Current: fromWire(w.Current), Distributed: w.Distributed}
	if w.Previous != nil {
		p := fromWire(*w.Previous)
		s.Previous = &p
	}
	if err := s.validate(); err != nil {
		return State{}, fmt.Errorf("%s: %w", FileName, err)
	}
	return s, nil
}

// describe names a decoding error without encoding/json's message, which
// can quote a character of the content.
func describe(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON (syntax error near byte %d)", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s holds a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON (it ends early)"
	}
	return "not the pull password state (an unknown field or the wrong shape)"
}

func (s State) validate() error {
	if err := s.Current.validate("current"); err != nil {
		return err
	}
	if p := s.Previous; p != nil {
		if err := p.validate("previous"); err != nil {
			return err
		}
		if p.Generation >= s.Current.Generation {
			return fmt.Errorf("previous generation %d is not older than current generation %d", p.Generation, s.Current.Generation)
		}
	}
	return nil
}

func (c Credential) validate(which string) error {
	switch {
	case c.Generation < 1:
		return fmt.Errorf("%s generation %d: want 1 or more", which, c.Generation)
	case len(c.Password.Reveal()) < minPasswordLen:
		return fmt.Errorf("%s password is missing or shorter than %d characters", which, minPasswordLen)
	case c.Created.IsZero():
		return fmt.Errorf("%s generation %d has no creation time", which, c.Generation)
	}
	return nil
}
