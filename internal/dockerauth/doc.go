// Package dockerauth builds the pull credentials agents hand to container
// runtimes: Docker's config.json ({"auths": {"host:port": {"auth": ...}}})
// and DC/OS's docker.tar.gz, the archive Marathon apps fetch
// ("fetch": [{"uri": "file:///etc/docker.tar.gz"}]) so the Docker
// containerizer finds .docker/config.json in the task's sandbox.
//
// Agents often carry credentials for other registries in the same files.
// Merge therefore replaces only the entries the operator owns and keeps
// every other entry and top-level key byte for byte; a file it cannot parse
// is refused, never overwritten. Output is deterministic (sorted keys, a
// fixed archive timestamp, no gzip name or time) so the operator can
// compare hashes each pass and write only when something changed.
//
// Nothing here logs, and no error shows a password or an auth string.
package dockerauth
