package registrygc

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestScriptArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
		want []string
	}{
		{"binary", Command{Runner: RunnerBinary, BinaryPath: "/usr/bin/docker-registry", ConfigPath: "/etc/docker/registry/config.yml"},
			[]string{"/usr/bin/docker-registry", "/etc/docker/registry/config.yml"}},
		{"binary, delete untagged, dry run", Command{Runner: RunnerBinary, BinaryPath: "/opt/registry/bin/registry",
			ConfigPath: "/etc/registry.yml", DeleteUntagged: true, DryRun: true},
			[]string{"/opt/registry/bin/registry", "--delete-untagged", "--dry-run", "/etc/registry.yml"}},
		{"docker", Command{Runner: RunnerDocker, Image: "registry:2.8.3", DataHostPath: "/var/lib/registry-data"},
			[]string{"/var/lib/registry-data", "", "", "registry:2.8.3", ContainerConfig}},
		{"docker, everything", Command{Runner: RunnerDocker, Image: "reg.example.com:5000/tools/registry:2.8.3@" + digest,
			DataHostPath: "/srv/registry", CertsHostPath: "/srv/certs", ConfigPath: "/srv/config.yml", DeleteUntagged: true},
			[]string{"/srv/registry", "/srv/certs", "/srv/config.yml", "reg.example.com:5000/tools/registry:2.8.3@" + digest,
				"--delete-untagged", ContainerConfig}},
	} {
		_, args, err := tc.cmd.Script()
		if err != nil || !slices.Equal(args, tc.want) {
			t.Errorf("%s: args %q, %v; want %q", tc.name, args, err, tc.want)
		}
	}
}

func TestScriptRefuses(t *testing.T) {
	binary := Command{Runner: RunnerBinary, BinaryPath: "/usr/bin/docker-registry", ConfigPath: "/etc/docker/registry/config.yml"}
	docker := Command{Runner: RunnerDocker, Image: "registry:2.8.3", DataHostPath: "/var/lib/registry"}
	for _, tc := range []struct {
		name string
		edit func(*Command)
		base Command
		want string
	}{
		{"no runner", func(c *Command) { c.Runner = "" }, binary, `runner must be "binary" or "docker", got ""`},
		{"unknown runner", func(c *Command) { c.Runner = "ssh" }, binary, `runner must be "binary" or "docker", got "ssh"`},
		{"no binary", func(c *Command) { c.BinaryPath = "" }, binary, "binaryPath is required (an absolute path)"},
		{"relative binary", func(c *Command) { c.BinaryPath = "docker-registry" }, binary, `binaryPath must be an absolute path`},
		{"binary with a space", func(c *Command) { c.BinaryPath = "/usr/bin/docker-registry --version" }, binary, "binaryPath must be an absolute path of letters"},
		{"binary with shell text", func(c *Command) { c.BinaryPath = "/usr/bin/x;rm" }, binary, "binaryPath must be an absolute path of letters"},
		{"binary with $( )", func(c *Command) { c.BinaryPath = "/$(reboot)" }, binary, "binaryPath must be an absolute path of letters"},
		{"binary with ..", func(c *Command) { c.BinaryPath = "/usr/bin/../../tmp/x" }, binary, `must be a clean path without . or .. segments or a trailing /, got "/usr/bin/../../tmp/x" (use "/tmp/x")`},
		{"binary is /", func(c *Command) { c.BinaryPath = "/" }, binary, "binaryPath must not be /"},
		{"binary, no config", func(c *Command) { c.ConfigPath = "" }, binary, "config file is required"},
		{"config with a newline", func(c *Command) { c.ConfigPath = "/etc/x\n--dry-run" }, binary, "config file must be an absolute path of letters"},
		{"config that looks like a flag", func(c *Command) { c.ConfigPath = "--help" }, binary, "config file must be an absolute path"},
		{"docker, no data", func(c *Command) { c.DataHostPath = "" }, docker, "dataHostPath is required"},
		{"docker, data with :", func(c *Command) { c.DataHostPath = "/data:/etc" }, docker, "dataHostPath must not contain ':'"},
		{"docker, certs with :", func(c *Command) { c.CertsHostPath = "/certs:rw" }, docker, "certsHostPath must not contain ':'"},
		{"docker, relative certs", func(c *Command) { c.CertsHostPath = "certs" }, docker, "certsHostPath must be an absolute path"},
		{"docker, config with ..", func(c *Command) { c.ConfigPath = "/srv/../etc/shadow" }, docker, "config file must be a clean path"},
		{"docker, no image", func(c *Command) { c.Image = "" }, docker, "image is required"},
		{"docker, image as a flag", func(c *Command) { c.Image = "--privileged" }, docker, "image must be a Docker image reference"},
		{"docker, image with a space", func(c *Command) { c.Image = "registry:2 sh" }, docker, "image must be a Docker image reference"},
		{"docker, upper-case repository", func(c *Command) { c.Image = "Registry:2" }, docker, "image must be a Docker image reference"},
		{"docker, bad digest", func(c *Command) { c.Image = "registry@sha256:xyz" }, docker, "image must be a Docker image reference"},
		{"docker, image with shell text", func(c *Command) { c.Image = "registry:$(id)" }, docker, "image must be a Docker image reference"},
		{"docker, too long", func(c *Command) { c.Image = strings.Repeat("a", 256) }, docker, "image must be a Docker image reference"},
	} {
		c := tc.base
		tc.edit(&c)
		script, args, err := c.Script()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
		if script != "" || args != nil {
			t.Errorf("%s: a script came with the error", tc.name)
		}
	}
	// Every bad value is named at once.
	_, _, err := Command{Runner: RunnerDocker, DataHostPath: "rel", Image: "-x"}.Script()
	if err == nil || !strings.Contains(err.Error(), "dataHostPath") || !strings.Contains(err.Error(), "image") {
		t.Errorf("two bad values: %v", err)
	}
}

// fakeBin makes a directory with an executable that prints its arguments,
// one a line, and exits with status.
func fakeBin(t *testing.T, name string, status int) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\necho 'level=info msg=\"x: marking blob sha256:1\"' >&2\nexit " +
		string(rune('0'+status)) + "\n"
	must(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	return dir
}

// The docker runner's script builds exactly this docker command line from
// its positional arguments, optional mounts left out when empty.
func TestDockerScriptCommandLine(t *testing.T) {
	bin := fakeBin(t, "docker", 0)
	for _, tc := range []struct {
		cmd  Command
		want []string
	}{
		{Command{Runner: RunnerDocker, Image: "registry:2.8.3", DataHostPath: "/srv/data"},
			[]string{"run", "--rm", "--network", "none", "-v", "/srv/data:/var/lib/registry",
				"registry:2.8.3", "garbage-collect", "/etc/docker/registry/config.yml"}},
		{Command{Runner: RunnerDocker, Image: "registry:2.8.3", DataHostPath: "/srv/data", CertsHostPath: "/srv/certs",
			ConfigPath: "/srv/config.yml", DeleteUntagged: true, DryRun: true},
			[]string{"run", "--rm", "--network", "none", "-v", "/srv/data:/var/lib/registry", "-v", "/srv/certs:/certs:ro",
				"-v", "/srv/config.yml:/etc/docker/registry/config.yml:ro",
				"registry:2.8.3", "garbage-collect", "--delete-untagged", "--dry-run", "/etc/docker/registry/config.yml"}},
	} {
		script, args, err := tc.cmd.Script()
		must(t, err)
		out, err := runLocal(t, []string{"PATH=" + bin + ":/usr/bin:/bin"}, script, args...)
		must(t, err)
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if !slices.Equal(got, tc.want) {
			t.Errorf("docker %q\nwant   %q", got, tc.want)
		}
	}
}

// The command's exit status comes through the output filter, and a run
// that failed before its summary cannot be parsed as one that freed
// nothing.
func TestScriptExitStatus(t *testing.T) {
	bin := fakeBin(t, "registry", 3)
	script, args, err := Command{Runner: RunnerBinary, BinaryPath: filepath.Join(bin, "registry"), ConfigPath: "/etc/c.yml"}.Script()
	must(t, err)
	out, err := runLocal(t, nil, script, args...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit: %v, want status 3", err)
	}
	if strings.Contains(string(out), "marking") || !strings.Contains(string(out), "garbage-collect\n/etc/c.yml") {
		t.Errorf("output %q", out)
	}

	// The real registry with a config file it cannot read.
	script, args, err = Command{Runner: RunnerBinary, BinaryPath: "/usr/bin/docker-registry", ConfigPath: "/nonexistent/config.yml"}.Script()
	must(t, err)
	out, err = runLocal(t, nil, script, args...)
	if err == nil {
		t.Errorf("garbage-collect with a missing config succeeded: %s", out)
	}
	if _, err := Parse(out); err == nil || !strings.Contains(err.Error(), "printed no summary") {
		t.Errorf("parse of a failed run: %v\n%s", err, out)
	}
}
