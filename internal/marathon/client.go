// Package marathon is the operator's Marathon client: a thin layer over
// github.com/gambol99/go-marathon v0.7.1 with contexts, timeouts, failover,
// auth from files and classified errors, plus the desired-app builder and
// the owned-field diff.
//
// go-marathon v0.7.1 has gaps that bite an operator (see API-NOTES.md §9).
// This package fills them as follows:
//   - No context anywhere: every go-marathon call runs on a one-call client
//     whose transport attaches the call's context, so a deadline
//     (spec.marathon.timeout) cancels it.
//   - Any 5xx or transport error marks the host down until an
//     unauthenticated /ping succeeds (5 s polls): with one URL every later
//     call fails with ErrMarathonDown. Because each call has its own
//     go-marathon client, that down-mark dies with the call; failover
//     across spec.marathon.urls and backoff are done here, and the real
//     status and body are kept so the error says what Marathon said.
//   - No 1.5 `networks`/`container.portMappings` in its structs and no way to
//     send an integer zero: apps are read and written as raw JSON (App)
//     through the same HTTP client (auth, metrics, timeouts).
//   - Ping sends Accept: application/json (406 on Marathon 1.4.4): Ping is a
//     raw request accepting text/plain.
//   - The SSE listener drops Marathon ≥1.4 event types, may reorder events,
//     never fails over and hides its errors: Watch reads /v2/events itself.
//   - DCOSToken rewrites every path to /marathon/...: the token is sent by
//     the transport instead, so spec.marathon.urls are used as written (give
//     https://<dcos>/marathon behind Admin Router).
package marathon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	gomarathon "github.com/gambol99/go-marathon"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

// maxBody bounds every answer read from Marathon, raw or through
// go-marathon (capTransport): a large /v2/apps answer is a few MB.
const maxBody = 8 << 20

// Options configures a Client.
type Options struct {
	// URLs are tried in order; the one that answered last is tried first.
	URLs []string
	// Timeout bounds one HTTP request (not the event stream).
	Timeout time.Duration
	// Username and PasswordFile: HTTP basic auth, read once by New.
	Username     string
	PasswordFile string
	// TokenFile holds a DC/OS auth token (Authorization: token=...). It is
	// re-read when it changes, since DC/OS tokens expire.
	TokenFile string
	// Metrics counts requests (may be nil).
	Metrics *metrics.Metrics
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
}

// OptionsFromSpec maps spec.marathon onto Options.
func OptionsFromSpec(m *v1alpha1.MarathonSpec, met *metrics.Metrics) Options {
	o := Options{URLs: m.URLs, Timeout: m.Timeout.Duration, TokenFile: m.DCOSTokenFile, Metrics: met}
	if m.BasicAuth != nil {
		o.Username, o.PasswordFile = m.BasicAuth.Username, m.BasicAuth.PasswordFile
	}
	return o
}

// Client talks to Marathon. It is safe for concurrent use.
type Client struct {
	members  []string
	timeout  time.Duration
	base     http.RoundTripper // the event stream only: its body never ends
	capped   http.RoundTripper // base with every body capped at maxBody
	user     string
	password string
	token    *tokenFile
	metrics  *metrics.Metrics

	mu      sync.Mutex
	current int
}

// New checks the options and reads the password file.
func New(o Options) (*Client, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("marathon: no URL: set spec.marathon.urls")
	}
	c := &Client{timeout: o.Timeout, base: o.Transport, user: o.Username, metrics: o.Metrics}
	for _, u := range o.URLs {
		p, err := url.Parse(strings.TrimRight(u, "/"))
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("marathon: URL %q must be http(s)://host[:port][/path]", u)
		}
		c.members = append(c.members, p.String())
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("marathon: read basic auth password (spec.marathon.basicAuth.passwordFile): %w", err)
		}
		c.password = strings.TrimRight(string(b), "\r\n")
	}
	if o.TokenFile != "" {
		c.token = &tokenFile{path: o.TokenFile}
		if _, err := c.token.get(); err != nil {
			return nil, err
		}
	}
	if c.base == nil {
		c.base = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   c.timeout,
			ResponseHeaderTimeout: c.timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	c.capped = &capTransport{base: c.base, max: maxBody}
	return c, nil
}

// Members returns the URLs in failover order as configured.
func (c *Client) Members() []string { return append([]string(nil), c.members...) }

// tokenFile re-reads a token when the file's modification time changes.
type tokenFile struct {
	path  string
	mu    sync.Mutex
	mod   time.Time
	value string
}

func (t *tokenFile) get() (string, error) {
	st, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("marathon: DC/OS token (spec.marathon.dcosTokenFile): %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if st.ModTime().Equal(t.mod) && t.value != "" {
		return t.value, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("marathon: DC/OS token (spec.marathon.dcosTokenFile): %w", err)
	}
	t.value, t.mod = strings.TrimSpace(string(b)), st.ModTime()
	if t.value == "" {
		return "", fmt.Errorf("marathon: DC/OS token file %s is empty", t.path)
	}
	return t.value, nil
}

// authorize adds credentials and counts the request: every request to
// Marathon, raw or through go-marathon, passes here.
func (c *Client) authorize(req *http.Request) error {
	if c.metrics != nil {
		c.metrics.MarathonRequests.WithLabelValues(req.Method).Inc()
	}
	switch {
	case c.token != nil:
		tok, err := c.token.get()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "token="+tok)
	case c.user != "":
		req.SetBasicAuth(c.user, c.password)
	}
	return nil
}

// failover runs fn against each member, starting with the one that
// answered last, until one gives an answer that is not "unavailable".
// Writes move on only when the request cannot have been applied (refused
// connection, 503 from a standby or a leaderless Marathon): a timeout may
// hide a write that happened, and the next pass reads the app again anyway.
func (c *Client) failover(ctx context.Context, write bool, fn func(ctx context.Context, member string) error) error {
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var last error
	for i := range c.members {
		idx := (start + i) % len(c.members)
		err := fn(ctx, c.members[idx])
		if err == nil || !IsUnavailable(err) {
			c.mu.Lock()
			c.current = idx
			c.mu.Unlock()
			return err
		}
		last = err
		if ctx.Err() != nil || (write && !notApplied(err)) {
			break
		}
	}
	return last
}

func notApplied(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	if e.Status == http.StatusServiceUnavailable {
		return true
	}
	var op *net.OpError
	return errors.As(e.Err, &op) && op.Op == "dial"
}

// raw sends one request built here (for what go-marathon cannot express)
// and decodes a 2xx JSON answer into out.
func (c *Client) raw(ctx context.Context, member, method, path string, q url.Values, body, out any, accept string) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("marathon %s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := member + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("marathon %s %s: %w", method, path, err)
	}
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.authorize(req); err != nil {
		return nil, err
	}
	resp, err := c.capped.RoundTrip(req)
	if err != nil {
		return nil, &Error{Kind: KindUnavailable, Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if errors.Is(err, ErrAnswerTooLarge) {
		return nil, &Error{Kind: KindOther, Method: method, Path: path, Status: resp.StatusCode,
			Message: "the answer is larger than the operator reads", Err: err}
	}
	if err != nil {
		return nil, &Error{Kind: KindUnavailable, Method: method, Path: path, Status: resp.StatusCode, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, classify(method, path, resp.StatusCode, b)
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, &Error{Kind: KindOther, Method: method, Path: path, Status: resp.StatusCode,
				Message: "answer is not the JSON expected", Err: err}
		}
	}
	return resp.Header, nil
}

// call runs fn on a go-marathon client that lives for this call only.
func (c *Client) call(ctx context.Context, member string, fn func(gomarathon.Marathon) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t := &callTransport{c: c, ctx: ctx, done: make(chan struct{})}
	defer close(t.done) // releases go-marathon's down-member prober, if it started one
	gm, err := gomarathon.NewClient(gomarathon.Config{
		URL:             member,
		HTTPClient:      &http.Client{Transport: t},
		EventsTransport: gomarathon.EventsTransportSSE, // never start the callback HTTP server
		LogOutput:       io.Discard,
	})
	if err != nil {
		return fmt.Errorf("marathon: client for %s: %w", member, err)
	}
	if err := fn(gm); err != nil {
		return t.explain(err)
	}
	return nil
}

// callTransport carries one go-marathon call's context and remembers the
// last answer, since go-marathon turns a 5xx into ErrMarathonDown and drops
// the body.
type callTransport struct {
	c    *Client
	ctx  context.Context
	done chan struct{}

	mu     sync.Mutex
	method string
	path   string
	status int
	body   []byte
	err    error
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/ping" || strings.HasSuffix(req.URL.Path, "/ping") {
		// go-marathon's cluster.healthCheckNode, started by a down-mark: this
		// client is used for one call only, so once the call is over answer
		// "up" without a request, and the prober goroutine ends.
		select {
		case <-t.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: http.NoBody,
			Header: http.Header{}, Request: req}, nil
	}
	r := req.Clone(t.ctx)
	if err := t.c.authorize(r); err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.method, t.path, t.status, t.body, t.err = r.Method, r.URL.Path, 0, nil, nil
	t.mu.Unlock()
	resp, err := t.c.capped.RoundTrip(r)
	if err != nil {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		return nil, err
	}
	if resp.StatusCode < 300 {
		resp.Body = &watchedBody{ReadCloser: resp.Body, t: t}
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody)) // the start of an error body says enough
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		t.mu.Lock()
		t.status, t.body = resp.StatusCode, b
		t.mu.Unlock()
	}
	return resp, nil
}

// watchedBody records a body read error on the call (go-marathon may not
// pass it on as it was).
type watchedBody struct {
	io.ReadCloser
	t *callTransport
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.t.mu.Lock()
		b.t.err = err
		b.t.mu.Unlock()
	}
	return n, err
}

// explain turns go-marathon's error into an *Error from what was seen.
func (t *callTransport) explain(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case errors.Is(t.err, ErrAnswerTooLarge):
		return &Error{Kind: KindOther, Method: t.method, Path: t.path, Status: t.status,
			Message: "the answer is larger than the operator reads", Err: t.err}
	case t.err != nil:
		return &Error{Kind: KindUnavailable, Method: t.method, Path: t.path, Err: t.err}
	case t.status >= 300:
		return classify(t.method, t.path, t.status, t.body)
	}
	return &Error{Kind: KindOther, Method: t.method, Path: t.path, Err: err}
}

// appPath is the URL path of an app id ("/grp/app" -> "/v2/apps/grp/app").
func appPath(id string) string { return "/v2/apps/" + strings.TrimPrefix(id, "/") }
