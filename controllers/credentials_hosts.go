package controllers

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/dockerauth"
)

// credentialHosts are the auths keys clients use for the registry: its
// address (and the host alone on port 443), and every DNS name and IP SAN
// with the registry's port. Wildcard names name no host to pull from.
func credentialHosts(r *v1alpha1.RegistryEndpoint) ([]string, error) {
	if r == nil {
		return nil, errors.New("pull credentials need registry.address")
	}
	hosts, err := v1alpha1.RegistryDirNames(r.Address)
	if err != nil {
		return nil, fmt.Errorf("registry.address: %w", err)
	}
	port := r.RegistryPort()
	for _, n := range append(slices.Clone(r.DNSNames), r.IPAddresses...) {
		if strings.HasPrefix(n, "*.") {
			continue
		}
		a := n
		if port != 0 {
			a = net.JoinHostPort(n, strconv.Itoa(port))
		}
		more, err := v1alpha1.RegistryDirNames(a)
		if err != nil {
			return nil, fmt.Errorf("registry name %q: %w", n, err)
		}
		for _, h := range more {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	for _, h := range hosts {
		if err := dockerauth.CheckHost(h); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}
