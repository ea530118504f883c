// Package htpasswd writes and reads the registry's htpasswd file: one
// "name:bcrypt-hash" line per user, the only hash docker-registry accepts.
//
// Bcrypt hashes are salted, so hashing every password again each pass would
// change the file each pass and make every pass look like a credentials
// change. Keep therefore reuses an existing line whenever its hash still
// matches the wanted password: an unchanged set of users and passwords
// gives the same bytes, and only a new or changed password is hashed anew.
// The registry re-reads the file when it changes, so a new file needs no
// restart.
//
// Nothing here logs, and errors name users and line numbers but never show
// a password or a hash.
package htpasswd
