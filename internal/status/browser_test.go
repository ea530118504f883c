package status

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestPageInChromium renders the page of a mixed-state cluster in headless
// Chromium (Debian's chromium package), as a person with scripts off would
// see it: a screenshot that must be a real picture, and the DOM that must
// carry the node addresses, "unreachable" and the certificate expiry.
// STATUS_SCREENSHOT=path keeps a copy of the screenshot for a look.
func TestPageInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium); CI installs it")
	}
	h := newHandler(mixedStore(), testConfig, logr.Discard(), func() time.Time { return testNow })
	srv := httptest.NewServer(h) // 127.0.0.1 only
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	shot := filepath.Join(dir, "status.png")
	runChromium(t, bin, dir, "--screenshot="+shot, "--window-size=1280,2000", srv.URL+"/")
	dom := runChromium(t, bin, dir, "--dump-dom", srv.URL+"/")

	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if keep := os.Getenv("STATUS_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, raw, 0o644); err != nil {
			t.Errorf("keeping screenshot: %v", err)
		}
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot is %dx%d, want 1280x2000", b.Dx(), b.Dy())
	}
	// A blank or error page has a handful of colours; text, badges and
	// tables in several colours have hundreds (anti-aliasing included).
	if n := colours(img); n < 50 {
		t.Errorf("screenshot has only %d colours: the page did not render", n)
	}

	for _, want := range []string{
		"198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.15",
		"unreachable", "2 unreachable",
		"2026-03-12 14:00:00 UTC", "expires in 2d 2h", "renewal due",
		"dial tcp 198.18.0.12:22: i/o timeout",
		"Out of sync: 8 item(s) need attention.",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
}

// runChromium runs one headless Chromium and returns its stdout. Chromium
// starts helper processes; they share its process group, which is killed
// when it is done or times out.
func runChromium(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	profile, err := os.MkdirTemp(dir, "profile-")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
		"--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if cmd.Process != nil {
		// Helpers outliving the browser would leak: end the group.
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			t.Logf("killing chromium's process group: %v", kerr)
		}
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.String()
}

func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
