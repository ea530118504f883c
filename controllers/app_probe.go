package controllers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/pki"
	"github.com/registry-operator/registry-operator/internal/state"
)

// DialFunc opens a TCP connection (net.Dialer.DialContext by default).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// probeResult is one TLS probe of every registry endpoint.
type probeResult struct {
	state.Probe
	// Current: every endpoint served the certificate in pki.ServerChain,
	// whatever else failed. It tells "restart needed" from "registry broken".
	Current bool
	// Stale: an endpoint was seen serving a certificate other than the
	// one in pki.ServerChain (not merely unreachable).
	Stale bool
}

// probeRegistry connects to each endpoint over TLS trusting only the PKI
// bundle, verifies the chain, that the certificate covers every name and
// address of spec.registry, that it is the certificate the operator issued
// last, and that GET /v2/ answers 200 or 401 (a registry, auth or not).
func probeRegistry(ctx context.Context, dial DialFunc, reg *v1alpha1.RegistryEndpoint, pki state.PKI,
	endpoints []string, timeout time.Duration) probeResult {
	res := probeResult{Current: len(endpoints) > 0}
	want, err := firstCert(pki.ServerChain)
	if err != nil {
		res.Current = false
		res.Error = err.Error()
		return res
	}
	res.Success = len(endpoints) > 0
	var errs []string
	for _, ep := range endpoints {
		serial, current, err := probeOne(ctx, dial, reg, pki.Bundle, want, ep, timeout)
		if serial != "" {
			res.Serial = serial
		}
		res.Current = res.Current && current
		res.Stale = res.Stale || (serial != "" && !current)
		if err != nil {
			res.Success = false
			errs = append(errs, ep+": "+err.Error())
		}
	}
	if len(endpoints) == 0 {
		errs = append(errs, "no endpoint to probe: the app has no running task and registry.address is unset")
	}
	res.Error = strings.Join(errs, "; ")
	return res
}

func probeOne(ctx context.Context, dial DialFunc, reg *v1alpha1.RegistryEndpoint, bundle []byte, want *x509.Certificate,
	endpoint string, timeout time.Duration) (serial string, current bool, err error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return "", false, errors.New("the PKI trust bundle holds no certificate")
	}
	serverName := reg.RegistryHost()
	tr := &http.Transport{
		DialContext:       dial,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+endpoint+"/v2/", nil)
	if err != nil {
		return "", false, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		var uerr x509.UnknownAuthorityError
		if errors.As(err, &uerr) {
			return "", false, fmt.Errorf("served certificate is not signed by the trust bundle: %w", err)
		}
		return "", false, fmt.Errorf("TLS GET /v2/: %w", err)
	}
	defer resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	serial = pki.Serial(leaf)
	current = bytes.Equal(leaf.Raw, want.Raw)
	var names []string
	names = append(names, reg.DNSNames...)
	names = append(names, reg.IPAddresses...)
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return serial, current, fmt.Errorf("served certificate does not cover %s: %w", n, err)
		}
	}
	if !current {
		return serial, false, fmt.Errorf("serves certificate serial %s, want %s (the one issued last)",
			serial, pki.Serial(want))
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return serial, current, fmt.Errorf("GET /v2/ answered %s: not a registry", resp.Status)
	}
	return serial, current, nil
}

func firstCert(chain []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(chain)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no server certificate issued yet")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	return c, nil
}
