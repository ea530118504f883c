package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/state"
)

// uploadProbeRepo is the repository the upload probe asks to push to. An
// accepted upload is cancelled at once, so nothing is ever stored under it.
const uploadProbeRepo = "registry-operator/upload-probe"

// uploadState is what one upload probe found.
type uploadState int

const (
	uploadsUnknown uploadState = iota
	uploadsRefused
	uploadsAccepted
)

// probeUploads asks the served registry, at registry.address and trusting
// only the PKI bundle, to start an upload (POST /v2/<repo>/blobs/uploads/):
// 405 means it is read-only; 202 means it takes uploads, and the upload
// is cancelled at once. With auth, it asks as the current pull user (every
// htpasswd user may push). Anything else is an error naming the answer.
func probeUploads(ctx context.Context, dial DialFunc, reg *v1alpha1.RegistryEndpoint, pk state.PKI,
	user state.PullUser, timeout time.Duration) (uploadState, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pk.Bundle) {
		return uploadsUnknown, errors.New("the PKI trust bundle holds no certificate")
	}
	tr := &http.Transport{
		DialContext:       dial,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: reg.RegistryHost(), MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	base := "https://" + reg.Address
	resp, err := send(ctx, tr, "POST", base+"/v2/"+uploadProbeRepo+"/blobs/uploads/", user)
	if err != nil {
		return uploadsUnknown, fmt.Errorf("upload probe: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusMethodNotAllowed:
		return uploadsRefused, nil
	case http.StatusAccepted:
		cancelUpload(ctx, tr, base, resp.Header.Get("Location"), user)
		return uploadsAccepted, nil
	}
	return uploadsUnknown, fmt.Errorf("upload probe: POST /v2/%s/blobs/uploads/ answered %s, want 405 (read-only) or 202",
		uploadProbeRepo, resp.Status)
}

// cancelUpload deletes the upload the probe started; a failure leaves an
// empty upload the registry's own purging removes.
func cancelUpload(ctx context.Context, tr http.RoundTripper, base, location string, user state.PullUser) {
	loc, err := url.Parse(location)
	if err != nil || location == "" {
		return
	}
	if !loc.IsAbs() {
		b, _ := url.Parse(base)
		loc = b.ResolveReference(loc)
	}
	_, _ = send(ctx, tr, "DELETE", loc.String(), user)
}

// send makes one request and drains and closes the answer's body.
func send(ctx context.Context, tr http.RoundTripper, method, u string, user state.PullUser) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if user.Name != "" {
		req.SetBasicAuth(user.Name, user.Password.Reveal())
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp, nil
}
