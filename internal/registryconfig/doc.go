// Package registryconfig renders the registry's own configuration file
// (docker/distribution 2.8 config.yml).
//
// It exists so that nothing secret has to travel in the Marathon app: the
// HTTP secret, the htpasswd realm and path, maintenance and debug settings
// go into a file placed on the registry's agents next to the TLS files, and
// the app only names that file ("serve /certs/config.yml"). The input is a
// small struct of its own, not the spec types, so the file format and the
// spec can change independently.
//
// The output is deterministic: the same Config always renders the same
// bytes, so the operator can compare hashes each pass and restart the
// registry only when something really changed. Redacted renders the same
// file with the HTTP secret masked, for plans and messages.
//
// Read-only maintenance is always written as the whole map
// (readonly: {enabled: true}): docker-registry 2.8 panics at start when the
// key is a plain boolean, which would leave the app crash-looping.
package registryconfig
