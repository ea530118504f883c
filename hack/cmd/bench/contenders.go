package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// Contender names, as they appear in the results.
const (
	opCold  = "operator-cold"
	opWarm  = "operator-warm"
	opDrift = "operator-drift"
	// opColdSub: a cold pass over the first subsetNodes hosts of a fleet
	// of 1000 or more (see subsetCold).
	opColdSub = "operator-cold-subset"
	ansCold   = "ansible-cold"
	ansWarm   = "ansible-warm"
	sshSeq    = "ssh-seq"
	sshXargs  = "ssh-xargs"
	// sshXargsSub: the xargs loop over the same hosts as opColdSub, so the
	// growth from 100 to 1000 hosts can be told apart from the operator's.
	sshXargsSub = "ssh-xargs-subset"
	opPassWarm  = "operator-warm-pass" // a pass inside `run`, connections kept
)

// labels describe each contender in the report.
var labels = map[string]string{
	opCold:      "operator `run --once`, cold (nothing on the nodes)",
	opWarm:      "operator `run --once`, warm (all in sync; connects to every node)",
	opDrift:     "operator `run --once`, 10% of nodes drifted",
	opColdSub:   "operator `run --once`, cold, 100 nodes of the 1000-node fleet",
	opPassWarm:  "operator pass inside `run`, all in sync (persistent SSH/SFTP)",
	ansCold:     "Ansible playbook, cold",
	ansWarm:     "Ansible playbook, nothing to change",
	sshSeq:      "seed: one `ssh` per node, sequential",
	sshXargs:    "seed: one `ssh` per node, `xargs -P 32`",
	sshXargsSub: "seed: one `ssh` per node, `xargs -P 32`, 100 nodes of the 1000-node fleet",
}

// setup is one fleet size's working files.
type setup struct {
	dir      string // per-N working directory
	operator string // binary
	spec     string // operator config file
	stateDir string
	fleet    *testfleet.Fleet
	hosts    []*testfleet.Host
	caFile   string // the CA every contender distributes
}

func (s *setup) holders() []int {
	out := make([]int, len(s.hosts))
	for i, h := range s.hosts {
		out[i] = h.HolderPID()
	}
	return out
}

func (s *setup) addrs() []string {
	out := make([]string, len(s.hosts))
	for i, h := range s.hosts {
		out[i] = h.Address
	}
	return out
}

// writeSpec writes the operator's config: registry, tls, a static node
// list, trust and conntrack. No Marathon: the benchmark is the node fleet.
func (s *setup) writeSpec(interval string) error {
	var err error
	s.spec, err = s.writeSpecFile("registry.yaml", interval)
	return err
}

func (s *setup) writeSpecFile(name, interval string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: registry-operator/v1alpha1
kind: Registry
metadata: {name: bench}
spec:
  registry: {address: %q}
  tls: {stateDir: %q}
  nodes:
    ssh: {user: root, privateKeyFile: %q, knownHostsFile: %q}
    static:
`, registryAddr, s.stateDir, s.fleet.PrivateKeyPath, s.fleet.KnownHostsPath)
	for _, a := range s.addrs() {
		fmt.Fprintf(&b, "      - %s\n", a)
	}
	fmt.Fprintf(&b, `  trust: {runtimes: [docker]}
  conntrack: {persistFile: %q, modulesLoadFile: %q}
  reconcile: {interval: %s}
`, persistFile, modulesLoadFile, interval)
	return writeFile(s.dir, name, []byte(b.String()), 0o644)
}

// operatorCmd is `run --once`; extra env adds profiles.
func (s *setup) operatorCmd(ctx context.Context, metricsOut string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.operator, "run", "--once", "--config", s.spec)
	cmd.Env = append(os.Environ(), append(env, "REGISTRY_OPERATOR_METRICS_OUT="+metricsOut)...)
	return cmd
}

// writeAnsible writes an inventory, ansible.cfg and the playbook doing the
// same work as the operator's trust and conntrack reconcilers.
func (s *setup) writeAnsible() (string, error) {
	dir := filepath.Join(s.dir, "ansible")
	var inv strings.Builder
	inv.WriteString("[agents]\n")
	for _, a := range s.addrs() {
		inv.WriteString(a + "\n")
	}
	fmt.Fprintf(&inv, "\n[agents:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n",
		s.fleet.PrivateKeyPath)
	if _, err := writeFile(dir, "inventory.ini", []byte(inv.String()), 0o644); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`[defaults]
inventory = %[1]s/inventory.ini
forks = 50
host_key_checking = True
retry_files_enabled = False
interpreter_python = /usr/bin/python3
home = %[1]s/home
local_tmp = %[1]s/home/tmp

[ssh_connection]
pipelining = True
control_path_dir = %[1]s/cp
ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=60s -o GSSAPIAuthentication=no -o UserKnownHostsFile=%[2]s -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o PasswordAuthentication=no
`, dir, s.fleet.KnownHostsPath)
	if _, err := writeFile(dir, "ansible.cfg", []byte(cfg), 0o644); err != nil {
		return "", err
	}
	play := fmt.Sprintf(`# The operator's node workload (trust + conntrack) as a playbook.
- hosts: agents
  gather_facts: false
  tasks:
    - name: certs.d directory for the registry
      ansible.builtin.file:
        path: %[1]q
        state: directory
        mode: "0755"
    - name: registry CA
      ansible.builtin.copy:
        src: %[2]q
        dest: %[3]q
        mode: "0644"
    - name: load nf_conntrack at boot
      ansible.builtin.copy:
        content: "nf_conntrack\n"
        dest: %[4]q
        mode: "0644"
    - name: liberal TCP window tracking, live and persisted
      ansible.posix.sysctl:
        name: %[5]s
        value: "1"
        sysctl_file: %[6]q
        sysctl_set: true
        reload: false
`, filepath.Dir(caPath), s.caFile, caPath, modulesLoadFile, sysctlKey, persistFile)
	return writeFile(dir, "playbook.yml", []byte(play), 0o644)
}

func (s *setup) ansibleCmd(ctx context.Context, playbook string) *exec.Cmd {
	dir := filepath.Dir(playbook)
	cmd := exec.CommandContext(ctx, "ansible-playbook", playbook)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"), "ANSIBLE_NOCOLOR=1")
	return cmd
}

// writeSeed writes the seed's loop: one ssh per node with the CA on stdin,
// sequential or through xargs -P 32.
func (s *setup) writeSeed() (string, error) {
	// Every path here is a constant without shell metacharacters.
	remote := fmt.Sprintf("mkdir -p %s && cat > %s && echo %s=1 > %s && echo nf_conntrack > %s && sysctl -q -w %s=1",
		filepath.Dir(caPath), caPath, sysctlKey, persistFile, modulesLoadFile, sysctlKey)
	script := fmt.Sprintf(`#!/bin/sh
# The seed's approach: one ssh per node. Usage: seed.sh seq | xargs [HOSTFILE] | one HOST
set -eu
hosts=%s
case "$1" in
one) exec ssh -i %s -o IdentitiesOnly=yes -o GSSAPIAuthentication=no -o StrictHostKeyChecking=yes \
	-o UserKnownHostsFile=%s -o BatchMode=yes root@"$2" "%s" < %s ;;
seq) for h in $(cat "$hosts"); do "$0" one "$h"; done ;;
xargs) xargs -P 32 -n 1 "$0" one < "${2:-$hosts}" ;;
*) echo "usage: $0 seq|xargs [HOSTFILE]|one HOST" >&2; exit 2 ;;
esac
`, filepath.Join(s.dir, "hosts.txt"), s.fleet.PrivateKeyPath, s.fleet.KnownHostsPath, remote, s.caFile)
	if _, err := writeFile(s.dir, "hosts.txt", []byte(strings.Join(s.addrs(), "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	if sub := s.subset(); sub != nil {
		if _, err := writeFile(s.dir, subsetHostsFile, []byte(strings.Join(sub.addrs(), "\n")+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	return writeFile(s.dir, "seed.sh", []byte(script), 0o755)
}

// subsetHostsFile lists the hosts of the subset passes (subsetCold).
const subsetHostsFile = "hosts-subset.txt"

func (s *setup) seedCmd(ctx context.Context, script string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, script, args...)
}
