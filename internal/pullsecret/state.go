package pullsecret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// PasswordBytes is how much randomness a pull password carries.
const PasswordBytes = 32

// Credential is one generation of the pull password.
type Credential struct {
	Generation int64
	Password   secret.Value
	Created    time.Time
}

// State is the pull password's lifecycle.
type State struct {
	Current Credential
	// Previous is the generation being retired; nil when no rotation is
	// under way. While set, both generations are valid.
	Previous *Credential
	// Distributed is when every known, reachable agent was first seen
	// carrying Current, zero until then; the grace before Previous is
	// dropped counts from here.
	Distributed time.Time
}

// UserName is the htpasswd and config.json user of a generation.
func UserName(pullUser string, generation int64) string {
	return pullUser + "-" + strconv.FormatInt(generation, 10)
}

// Users returns the htpasswd users the state needs: the current generation
// and, during a rotation, the previous one.
func (s State) Users(pullUser string) map[string]secret.Value {
	u := map[string]secret.Value{UserName(pullUser, s.Current.Generation): s.Current.Password}
	if p := s.Previous; p != nil {
		u[UserName(pullUser, p.Generation)] = p.Password
	}
	return u
}

// NewPassword returns PasswordBytes from r (crypto/rand.Reader when nil) as
// unpadded base64url: 43 characters, safe in URLs, YAML, JSON and basic
// auth, and under bcrypt's 72-byte limit.
func NewPassword(r io.Reader) (secret.Value, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, PasswordBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("generate pull password: %w", err)
	}
	return secret.Value(base64.RawURLEncoding.EncodeToString(b)), nil
}

// Carried returns the generation whose credentials an agent holds, given
// the user and password found in its files, or 0 when they match neither
// the current nor the previous generation (missing, stale, or edited by
// hand): the Agent.Generation to pass to Decide.
func (s State) Carried(pullUser, user string, password secret.Value) int64 {
	for _, c := range []*Credential{&s.Current, s.Previous} {
		if c != nil && user == UserName(pullUser, c.Generation) &&
			subtle.ConstantTimeCompare([]byte(password.Reveal()), []byte(c.Password.Reveal())) == 1 {
			return c.Generation
		}
	}
	return 0
}
