// Package nodes reaches the cluster's agents: discovery (Mesos, static list)
// and an SSH executor that keeps one client and one SFTP channel per node, so
// a steady-state pass reads files without starting a process on the node.
package nodes

import (
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// Config is the executor's view of nodes.ssh. It is read from the spec at the
// start of each pass; a client dialled with a different Config is replaced.
type Config struct {
	User           string
	Port           int
	PrivateKeyFile string
	KnownHostsFile string
	HostKeyPolicy  string
	Sudo           bool
	Concurrency    int
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	KeepAlive      time.Duration
	SFTPServer     string
}

// ConfigFrom converts a defaulted SSHSpec.
func ConfigFrom(s v1alpha1.SSHSpec) Config {
	return Config{
		User:           s.User,
		Port:           s.Port,
		PrivateKeyFile: s.PrivateKeyFile,
		KnownHostsFile: s.KnownHostsFile,
		HostKeyPolicy:  s.HostKeyPolicy,
		Sudo:           s.SudoEnabled(),
		Concurrency:    s.Concurrency,
		ConnectTimeout: s.ConnectTimeout.Duration,
		CommandTimeout: s.CommandTimeout.Duration,
		KeepAlive:      s.KeepAlive.Duration,
		SFTPServer:     s.SFTPServer,
	}
}

// The accessors read the values as ConfigFrom took them from the spec,
// which v1alpha1.Default has filled: defaults live there only.
func (a Config) connectTimeout() time.Duration { return a.ConnectTimeout }

func (a Config) commandTimeout() time.Duration { return a.CommandTimeout }

func (a Config) concurrency() int { return a.Concurrency }
