package marathonsim

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DialFunc dials a task's endpoint for a health check.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// runCheck performs one Marathon-level health check (TCP, HTTP, HTTPS and
// their MESOS_ twins) against host:port. HTTP passes on 200-399 (and 1xx
// with ignoreHttp1xx); HTTPS does not verify the certificate, as Marathon.
func runCheck(ctx context.Context, dial DialFunc, hc HealthCheckSpec, host string, port int) error {
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	switch hc.Protocol {
	case "TCP", "MESOS_TCP":
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	case "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS", "":
		scheme := "http"
		if hc.Protocol == "HTTPS" || hc.Protocol == "MESOS_HTTPS" {
			scheme = "https"
		}
		p := hc.Path
		if p == "" {
			p = "/"
		}
		tr := &http.Transport{
			DialContext:       dial,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Marathon's HTTPS checks do not verify.
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+p, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}).Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 || hc.IgnoreHTTP1xx && resp.StatusCode < 200 {
			return nil
		}
		return fmt.Errorf("got status %d", resp.StatusCode)
	}
	return fmt.Errorf("health check protocol %s is not run by the emulator", hc.Protocol)
}

// checkPort picks the port a check targets: "port" wins over "portIndex".
func checkPort(hc HealthCheckSpec, ports []int) (int, error) {
	if hc.Port != nil && *hc.Port != 0 {
		return *hc.Port, nil
	}
	i := 0
	if hc.PortIndex != nil {
		i = *hc.PortIndex
	}
	if i < 0 || i >= len(ports) {
		return 0, fmt.Errorf("portIndex %d out of range (%d ports)", i, len(ports))
	}
	return ports[i], nil
}
