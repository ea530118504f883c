package registryconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LogLevels are the levels Validate accepts for Config.LogLevel.
var LogLevels = []string{"error", "warn", "info", "debug"}

// Validate reports every field docker-registry would reject, misread or run
// unsafely with. Messages name the field and never show the secret.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.LogLevel != "" && !slices.Contains(LogLevels, c.LogLevel) {
		add(fmt.Errorf("log.level %q: want one of %s", c.LogLevel, strings.Join(LogLevels, ", ")))
	}
	add(absPath("storage.filesystem.rootdirectory", c.Storage.RootDirectory))
	if up := c.Storage.UploadPurging; up != nil && up.Enabled {
		add(positive("storage.maintenance.uploadpurging.age", up.Age))
		add(positive("storage.maintenance.uploadpurging.interval", up.Interval))
	}
	add(c.HTTP.validate())
	if a := c.Htpasswd; a != nil {
		if strings.TrimSpace(a.Realm) == "" || strings.ContainsAny(a.Realm, "\"\r\n") {
			add(fmt.Errorf("auth.htpasswd.realm %q: want a non-empty name without quotes or line breaks "+
				"(it is sent to clients in the WWW-Authenticate header)", a.Realm))
		}
		add(absPath("auth.htpasswd.path", a.Path))
	}
	if h := c.Health; h != nil {
		if h.Interval < time.Second {
			add(fmt.Errorf("health.storagedriver.interval %s: want at least 1s", h.Interval))
		}
		if h.Threshold < 1 {
			add(fmt.Errorf("health.storagedriver.threshold %d: want at least 1", h.Threshold))
		}
	}
	if p := c.Proxy; p != nil {
		add(p.validate())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registry config: %w", err)
	}
	return nil
}

func (h HTTP) validate() error {
	var errs []error
	errs = append(errs, hostPort("http.addr", h.Addr))
	if h.Secret.Empty() {
		errs = append(errs, errors.New("http.secret is empty: without it every registry instance makes up its own "+
			"and an upload started on one fails on another; set a random secret"))
	}
	if t := h.TLS; t != nil {
		errs = append(errs, absPath("http.tls.certificate", t.Certificate), absPath("http.tls.key", t.Key))
	}
	if d := h.Debug; d != nil {
		errs = append(errs, hostPort("http.debug.addr", d.Addr))
		if d.Addr == h.Addr {
			errs = append(errs, fmt.Errorf("http.debug.addr %q is http.addr too: the debug listener needs a port of its own", d.Addr))
		}
	}
	return errors.Join(errs...)
}

func absPath(field, p string) error {
	if !path.IsAbs(p) || strings.ContainsAny(p, "\r\n") {
		return fmt.Errorf("%s %q: want an absolute path", field, p)
	}
	return nil
}

func positive(field string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %s: want a positive duration", field, d)
	}
	return nil
}

func hostPort(field, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port or :port: %w", field, addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s %q: port must be a number from 1 to 65535", field, addr)
	}
	return nil
}

func (p Proxy) validate() error {
	u, err := url.Parse(p.RemoteURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// Not the URL itself: it may carry user info.
		return errors.New("proxy.remoteurl: want an http(s) URL without user info")
	}
	if (p.Username == "") != p.Password.Empty() {
		return errors.New("proxy.username and proxy.password: set both or neither")
	}
	if strings.ContainsAny(p.Username, "\r\n") {
		return errors.New("proxy.username: must be one line")
	}
	return nil
}
