package v1alpha1

import (
	"net"
	"strconv"
)

// hostOf returns the host part of "host:port", or s itself.
func hostOf(s string) string {
	h, _, err := net.SplitHostPort(s)
	if err != nil {
		return s
	}
	return h
}

// RegistryHost is the host part of registry.address.
func (r *RegistryEndpoint) RegistryHost() string { return hostOf(r.Address) }

// RegistryPort is the port of registry.address (0 if it has none).
func (r *RegistryEndpoint) RegistryPort() int {
	_, p, err := net.SplitHostPort(r.Address)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
