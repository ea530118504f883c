package nodes

import (
	"fmt"
	"net/netip"
	"strings"
)

// Agents from Mesos are input like any other: a master (or whoever answers
// on its address) can report any string as an agent's pid or hostname. An
// address becomes a dial target, a store key, a metric label and a path on
// the status page, so only plain IP addresses and DNS names get that far.

// CheckedAgents splits Mesos agents into those whose address and hostname are
// plain IP addresses or DNS names, and errors naming the others. IP addresses
// come back in canonical form ("::ffff:198.18.0.1" is "198.18.0.1"), so one
// machine never appears under two keys.
func CheckedAgents(agents []Agent) ([]Agent, []error) {
	var ok []Agent
	var bad []error
	for _, a := range agents {
		addr, err := agentHost(a.Address)
		if err != nil {
			bad = append(bad, fmt.Errorf("mesos agent %s (hostname %s): address: %w", shown(a.Address), shown(a.Hostname), err))
			continue
		}
		if _, err := agentHost(a.Hostname); err != nil {
			bad = append(bad, fmt.Errorf("mesos agent %s (hostname %s): hostname: %w", shown(a.Address), shown(a.Hostname), err))
			continue
		}
		a.Address = addr
		ok = append(ok, a)
	}
	return ok, bad
}

// agentHost returns h in canonical form if it is a usable IP address or an
// RFC 1123 DNS name without a trailing dot (a trailing dot would make the
// same machine a second node, and certificate and certs.d names never carry
// it).
func agentHost(h string) (string, error) {
	if ip, err := netip.ParseAddr(h); err == nil {
		ip = ip.Unmap()
		switch {
		case ip.Zone() != "":
			return "", fmt.Errorf("IPv6 zone %q is not allowed", ip.Zone())
		case ip.IsUnspecified(), ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			return "", fmt.Errorf("%s is not a host address", ip)
		}
		return ip.String(), nil
	}
	if err := dnsName(h); err != nil {
		return "", err
	}
	return h, nil
}

// dnsName checks RFC 1123 host name syntax.
func dnsName(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("empty")
	case len(h) > 253:
		return fmt.Errorf("longer than 253 characters")
	case strings.HasSuffix(h, "."):
		return fmt.Errorf("DNS name ends in a dot")
	}
	labels := strings.Split(h, ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("neither an IP address nor a DNS name (numeric top-level label)")
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("neither an IP address nor a DNS name (label %s)", shown(label))
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("neither an IP address nor a DNS name (character %q)", r)
			}
		}
	}
	return nil
}

// shown quotes a value from outside for a log line or an error: control
// characters escaped, at most 64 characters.
func shown(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", s[:64], len(s))
	}
	return fmt.Sprintf("%q", s)
}
