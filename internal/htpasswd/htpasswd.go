package htpasswd

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/secret"
)

// DefaultCost is the bcrypt cost of new hashes. The registry checks the
// hash on every request, so the cost is paid per pull request too.
const DefaultCost = bcrypt.DefaultCost

// MaxPasswordLen is bcrypt's limit: longer passwords are refused rather
// than silently cut.
const MaxPasswordLen = 72

// ErrMalformed marks an htpasswd file that does not parse.
var ErrMalformed = errors.New("malformed htpasswd file")

// hashRE is a bcrypt hash in the forms the registry's bcrypt accepts.
var hashRE = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// CheckName reports whether name can be an htpasswd user: not empty,
// valid UTF-8, no ':' (it ends the name), no white space or control
// characters (the registry trims lines and clients split on them).
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("user name is empty")
	case !utf8.ValidString(name):
		return fmt.Errorf("user name %q is not valid UTF-8", name)
	case strings.ContainsRune(name, ':'):
		return fmt.Errorf("user name %q contains ':', which ends the name in htpasswd and basic auth", name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("user name %q contains white space or a control character", name)
	}
	return nil
}

// CheckHash reports whether h is a bcrypt hash ($2a$, $2b$ or $2y$) the
// registry can use. The error never shows the hash.
func CheckHash(h string) error {
	if !hashRE.MatchString(h) {
		return errors.New("not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters); only bcrypt works with the registry")
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return errors.New("bcrypt hash with an invalid cost (want 04 to 31)")
	}
	return nil
}

func checkPassword(name string, p secret.Value) error {
	switch {
	case p.Empty():
		return fmt.Errorf("password of user %q is empty", name)
	case len(p.Reveal()) > MaxPasswordLen:
		return fmt.Errorf("password of user %q is longer than %d bytes, bcrypt's limit", name, MaxPasswordLen)
	case strings.ContainsAny(p.Reveal(), "\r\n"):
		return fmt.Errorf("password of user %q contains a line break", name)
	}
	return nil
}

// Parse reads a file: "name:hash" lines, any order, the last line's
// newline optional. Blank lines, comments, duplicate users and hashes other
// than bcrypt are errors (wrapping ErrMalformed) naming the line.
func Parse(b []byte) (map[string]string, error) {
	users := map[string]string{}
	if len(b) == 0 {
		return users, nil
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: no ':' between user name and hash", ErrMalformed, n)
		}
		if err := CheckName(name); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrMalformed, n, err)
		}
		if err := CheckHash(hash); err != nil {
			return nil, fmt.Errorf("%w: line %d (user %q): %w", ErrMalformed, n, name, err)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("%w: line %d: user %q appears twice", ErrMalformed, n, name)
		}
		users[name] = hash
	}
	return users, nil
}

// Render writes users (name to bcrypt hash) sorted by name, one line each.
func Render(users map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(users)) {
		if err := CheckName(name); err != nil {
			return nil, err
		}
		if err := CheckHash(users[name]); err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
		buf.WriteString(name + ":" + users[name] + "\n")
	}
	return buf.Bytes(), nil
}

// Hash returns a new bcrypt hash of password at cost.
func Hash(password secret.Value, cost int) (string, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", fmt.Errorf("bcrypt cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password.Reveal()), cost)
	if err != nil {
		// bcrypt's errors name lengths and costs, never the password.
		return "", fmt.Errorf("bcrypt: %w", err)
	}
	return string(h), nil
}

// Verify reports whether hash is password's. A hash that is not bcrypt is
// an error, a wrong password is (false, nil).
func Verify(hash string, password secret.Value) (bool, error) {
	if err := CheckHash(hash); err != nil {
		return false, err
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password.Reveal()))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	default:
		return false, fmt.Errorf("bcrypt: %w", err)
	}
}
