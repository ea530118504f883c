// Package pullsecret keeps the generated pull password agents use to pull
// from the registry, and decides when it rotates.
//
// A rotation must never break a pull, so it runs in phases like a CA
// rotation: a new generation is created and valid next to the old one (each
// generation has its own user name, <pullUser>-<generation>, so the
// htpasswd file holds both), then it is distributed to every agent, and the
// old one is dropped only once every known, reachable agent carries the new
// one and a grace of min(10m, rotation/2) has passed, so that tasks which
// fetched the old credentials just before can finish their pulls.
//
// Decisions are pure functions of the state, the agents' view and an
// injected clock; the caller persists the new state (Marshal, in the PKI
// state store under FileName) before acting on it, so whoever runs next
// continues the same rotation.
package pullsecret
