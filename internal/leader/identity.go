// Package leader elects one reconciling instance among several through
// ZooKeeper, fences it the moment its session is in doubt, and keeps the
// state every instance must share (the PKI set) in ZooKeeper under the same
// session, so only the leader can write it.
package leader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Identity names an instance. The leader's identity is the data of its
// election znode, so every follower can show who leads.
type Identity struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"startedAt"`
}

// Self describes this process.
func Self(version string) Identity {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return Identity{Host: host, PID: os.Getpid(), Version: version, StartedAt: time.Now().UTC().Truncate(time.Second)}
}

// String is how logs and the status page name an instance.
func (i Identity) String() string {
	if i.Host == "" && i.PID == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%s (pid %d, version %s)", i.Host, i.PID, i.Version)
}

// Digest is a ZooKeeper digest credential ("user:password").
type Digest struct {
	User     string
	password string
}

// ReadDigestFile reads "user:password" from path (one line; surrounding
// white space ignored).
func ReadDigestFile(p string) (*Digest, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read ZooKeeper digest file %s: %w (spec.leaderElection.digestFile)", p, err)
	}
	line := string(bytes.TrimSpace(b))
	user, pass, ok := strings.Cut(line, ":")
	if !ok || user == "" || pass == "" || strings.ContainsAny(line, "\r\n") {
		// Never echo the content: it is a password.
		return nil, fmt.Errorf("ZooKeeper digest file %s must hold one line \"user:password\" with both parts non-empty", p)
	}
	return &Digest{User: user, password: pass}, nil
}

// NewDigest builds a credential in code (tests, tools).
func NewDigest(user, password string) *Digest { return &Digest{User: user, password: password} }

// String never reveals the password.
func (d *Digest) String() string { return "digest:" + d.User + ":<redacted>" }

func (d *Digest) auth() []byte { return []byte(d.User + ":" + d.password) }

// ACL grants every permission to holders of this credential only.
func (d *Digest) acl() []zk.ACL { return zk.DigestACL(zk.PermAll, d.User, d.password) }

// electionACL lets anyone read who leads, and only holders of the digest
// (when there is one) create or remove candidates.
func electionACL(d *Digest) []zk.ACL {
	if d == nil {
		return zk.WorldACL(zk.PermAll)
	}
	return append(zk.WorldACL(zk.PermRead), d.acl()...)
}

// PKIPath is the znode holding the shared PKI set: a sibling of the
// election path, so election children stay candidates only.
func PKIPath(electionPath string) string {
	return path.Join(path.Dir(electionPath), "pki")
}

func encodeIdentity(i Identity) []byte {
	b, _ := json.Marshal(i) // plain struct: cannot fail
	return b
}

func decodeIdentity(b []byte) (Identity, error) {
	var i Identity
	if err := json.Unmarshal(b, &i); err != nil {
		return Identity{}, fmt.Errorf("election znode data is not an identity: %w", err)
	}
	return i, nil
}
