package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxResponse bounds what Fetch reads: a status of thousands of nodes is a
// few MiB; more than this is not a status document.
const maxResponse = 64 << 20

// Fetch reads the status of the operator listening at addr ("host:port", or
// a base URL such as "https://host:port"). The deadline comes from ctx.
func Fetch(ctx context.Context, addr string) (Status, error) {
	url, err := statusURL(addr)
	if err != nil {
		return Status{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Status{}, fmt.Errorf("status from %s: %w", addr, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("status from %s: %w (is the operator running with --listen on that address?)", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Status{}, fmt.Errorf("status from %s: reading response: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("status from %s: %s: %s", url, resp.Status, firstLine(body))
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return Status{}, fmt.Errorf("status from %s: not a registry-operator status document: %w", url, err)
	}
	return st, nil
}

func statusURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", fmt.Errorf("status: no address given (--addr HOST:PORT)")
	}
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/") + APIPath, nil
	}
	if strings.Contains(addr, "/") {
		return "", fmt.Errorf("status: address %q is neither HOST:PORT nor an http(s) URL", addr)
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr // as --listen :8080 means every interface
	}
	return "http://" + addr + APIPath, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
