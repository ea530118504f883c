package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/secret"
)

// htpasswdKept remembers which htpasswd contents already hold exactly the
// users wanted. Telling that takes a bcrypt verification per user, tens of
// milliseconds each at the default cost, on every candidate agent and
// round; a file and users seen to match before match again. Only results
// that change nothing are remembered, so a new or changed password is
// always hashed (and salted) anew.
type htpasswdKept struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]htpasswd.Result
}

// maxHtpasswdKept bounds the memory: one entry per candidate agent's file
// (each has its own salts) is what a steady state needs.
const maxHtpasswdKept = 256

// keep is htpasswd.Keep, remembered when the file needs no change.
func (k *htpasswdKept) keep(have []byte, users map[string]secret.Value, cost int) (htpasswd.Result, error) {
	key := htpasswdKey(have, users)
	k.mu.Lock()
	r, ok := k.seen[key]
	k.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := htpasswd.Keep(have, users, cost)
	if err != nil || !r.Unchanged() {
		return r, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.seen == nil || len(k.seen) >= maxHtpasswdKept {
		k.seen = map[[sha256.Size]byte]htpasswd.Result{}
	}
	k.seen[key] = r
	return r, nil
}

// htpasswdKey digests the file and every user with its password, each
// length-prefixed so no two inputs run together.
func htpasswdKey(have []byte, users map[string]secret.Value) [sha256.Size]byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(have)
	for _, name := range slices.Sorted(maps.Keys(users)) {
		field([]byte(name))
		field([]byte(users[name].Reveal()))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
