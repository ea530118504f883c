// Package registrygc builds the garbage-collect command the operator runs
// on the registry's data agent, and reads what it printed. The command is
// a fixed POSIX sh script; every value reaches it as a positional argument
// (nodes.Conn.Run), after validation, and never as shell text.
package registrygc

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Runner is how garbage-collect is started on the agent.
type Runner string

const (
	// RunnerBinary runs a registry binary installed on the agent, such as
	// Debian's /usr/bin/docker-registry.
	RunnerBinary Runner = "binary"
	// RunnerDocker runs the app's image with `docker run --rm`, its data
	// directory mounted where the image keeps it.
	RunnerDocker Runner = "docker"
)

// Paths inside the registry image (docker runner).
const (
	ContainerData   = "/var/lib/registry"
	ContainerCerts  = "/certs"
	ContainerConfig = "/etc/docker/registry/config.yml"
)

// Command is one garbage-collect run.
type Command struct {
	Runner Runner
	// BinaryPath is the registry binary on the agent (binary runner).
	BinaryPath string
	// ConfigPath is the registry's configuration file on the agent. The
	// binary runner requires it; the docker runner mounts it read-only
	// over the image's own, or uses the image's own when it is empty. In
	// the container the data is at ContainerData, so a mounted config's
	// storage.filesystem.rootdirectory must say that path.
	ConfigPath string
	// Image is the registry image (docker runner).
	Image string
	// DataHostPath is the registry's data directory on the agent (docker
	// runner; the binary runner finds it in the config file).
	DataHostPath string
	// CertsHostPath, when set, is mounted read-only at /certs (docker
	// runner), for a config file that names files there.
	CertsHostPath string
	// DeleteUntagged also removes manifests no tag points at.
	DeleteUntagged bool
	// DryRun only lists what would be removed.
	DryRun bool
}

// The scripts. The binary is "$1"; the docker runner's data, certs,
// config and image are "$1".."$4". What follows is garbage-collect's own
// arguments (flags, then the config file), passed through as "$@".
const (
	scriptBinary = `bin=$1; shift
set -- "$bin" garbage-collect "$@"
` + runFiltered
	// --network none: garbage-collect reads and deletes files, nothing
	// else; the container gets no network to do anything else with.
	scriptDocker = `data=$1 certs=$2 config=$3 image=$4; shift 4
set -- "$image" garbage-collect "$@"
if [ -n "$config" ]; then set -- -v "$config:` + ContainerConfig + `:ro" "$@"; fi
if [ -n "$certs" ]; then set -- -v "$certs:` + ContainerCerts + `:ro" "$@"; fi
set -- docker run --rm --network none -v "$data:` + ContainerData + `" "$@"
` + runFiltered
	// runFiltered runs "$@" with stderr (where the registry logs each
	// deletion) on stdout, drops the "marking" lines (one per referenced
	// blob and manifest: the bulk of the output, which would otherwise hit
	// the connection's output limit on a large registry), and exits with
	// the command's status.
	runFiltered = `{ "$@" 2>&1; echo "exit-status $?"; } | awk '
/^exit-status [0-9]+$/ { st = $2; next }
!/: marking (manifest|blob) / { print }
END { exit st }'`
)

// Script returns the script and its arguments for nodes.Conn.Run, or an
// error naming the first value that is not acceptable.
func (c Command) Script() (string, []string, error) {
	var gcArgs []string
	if c.DeleteUntagged {
		gcArgs = append(gcArgs, "--delete-untagged")
	}
	if c.DryRun {
		gcArgs = append(gcArgs, "--dry-run")
	}
	switch c.Runner {
	case RunnerBinary:
		if err := errors.Join(checkPath("binaryPath", c.BinaryPath, false), checkPath("config file", c.ConfigPath, false)); err != nil {
			return "", nil, err
		}
		return scriptBinary, append(append([]string{c.BinaryPath}, gcArgs...), c.ConfigPath), nil
	case RunnerDocker:
		err := errors.Join(checkMount("dataHostPath", c.DataHostPath, false), checkMount("certsHostPath", c.CertsHostPath, true),
			checkMount("config file", c.ConfigPath, true), checkImage(c.Image))
		if err != nil {
			return "", nil, err
		}
		args := append([]string{c.DataHostPath, c.CertsHostPath, c.ConfigPath, c.Image}, gcArgs...)
		return scriptDocker, append(args, ContainerConfig), nil
	}
	return "", nil, fmt.Errorf("runner must be %q or %q, got %q", RunnerBinary, RunnerDocker, c.Runner)
}

// safePathRE is the allow-list of api/v1alpha1's paths.
var safePathRE = regexp.MustCompile(`^/[A-Za-z0-9._/@+:=-]*$`)

func checkPath(what, p string, optional bool) error {
	switch {
	case p == "" && optional:
		return nil
	case p == "":
		return fmt.Errorf("%s is required (an absolute path)", what)
	case !safePathRE.MatchString(p):
		return fmt.Errorf("%s must be an absolute path of letters, digits and . _ / @ + : = -, got %q", what, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%s must be a clean path without . or .. segments or a trailing /, got %q (use %q)", what, p, path.Clean(p))
	case p == "/":
		return fmt.Errorf("%s must not be /", what)
	}
	return nil
}

// checkMount is checkPath for a docker -v source, where ':' separates the
// source from the target and options.
func checkMount(what, p string, optional bool) error {
	if strings.Contains(p, ":") {
		return fmt.Errorf("%s must not contain ':' (docker -v reads it as a separator), got %q", what, p)
	}
	return checkPath(what, p, optional)
}

// imageRE is a Docker image reference: an optional registry host[:port],
// lower-case path components, an optional tag and an optional digest
// (the grammar of distribution's reference package).
var imageRE = regexp.MustCompile(`^` +
	`(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)/)?` +
	`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*` +
	`(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?` +
	`(?:@sha256:[0-9a-f]{64})?$`)

func checkImage(image string) error {
	if image == "" {
		return errors.New("image is required (a Docker image reference such as registry:2.8.3)")
	}
	if len(image) > 255 || !imageRE.MatchString(image) {
		return fmt.Errorf("image must be a Docker image reference such as registry:2.8.3 or example.com:5000/tools/registry@sha256:<64 hex>, got %q", image)
	}
	return nil
}
