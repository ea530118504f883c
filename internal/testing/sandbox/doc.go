// Package sandbox runs the whole registry-operator setup on one Linux
// machine: the demo (hack/cmd/sandbox, `make demo`) and the end-to-end
// suite (test/e2e, `make e2e`) both use it.
//
// A sandbox is
//
//   - N agents: a testfleet (real OpenSSH sshd hosts in network namespaces,
//     addresses in 198.18.0.0/16), agent i being Fleet host i;
//   - the Marathon emulator (internal/testing/marathonsim) served in-process on
//     127.0.0.1:<free port>, with the process executor: the registry app's
//     task is the real /usr/bin/docker-registry started inside the agent
//     the app's constraint picks (nsenter into its namespaces), listening on
//     <agent IP>:<containerPort>. The same server answers the Mesos
//     master's GET /master/slaves with the agents that are "listed";
//   - the operator as a subprocess (<binary> run --config <dir>/config.yaml
//     --listen 127.0.0.1:<port>), its stdout and stderr appended to
//     <dir>/operator.log, so a test can kill -9 it, restart it and read its log.
//
// The config is config/sandbox.yaml with its ${...} placeholders filled
// (see that file); registry.address is <agent 0 IP>:5000 and the app's
// constraint pins it to agent 0. Every file of a sandbox is under Dir
// (config.yaml, operator.log, tasks.log, state/ for tls.stateDir, images/).
//
// Typical use in a test (the test binary runs as root):
//
//	sb := sandbox.StartT(t, sandbox.Options{Agents: 3})
//	sb.Eventually(t, 2*time.Minute, "everything in sync", sb.Converged)
//	m, _ := sb.Metrics(ctx)                 // parsed /metrics
//	v, _ := m.Get("registry_operator_registry_probe_success")
//	st, _ := sb.Status(ctx)                 // /api/status as status.Status
//	b, _ := sb.Agent(1).ReadFile(ctx, sb.CAPath()) // files inside agent 1
//	digest, _ := sb.Push(ctx, 1, "e2e/hello:1")    // skopeo on agent 1
//	_, _ = sb.Pull(ctx, 2, "e2e/hello:1")          // skopeo on agent 2
//	_ = sb.EditConfig(func(r *v1alpha1.Registry) { ... }) // hot reload
//	_ = sb.KillOperator(); _ = sb.StartOperator(ctx)      // crash and restart
//
// The API, by concern:
//
//   - life cycle: Start / StartT (StartT skips when not root and closes in
//     t.Cleanup), Close (idempotent; removes every namespace, link, process
//     and file), Cleanup (leftovers of sandboxes whose owner died; Start
//     calls it).
//   - operator: StartOperator, StopOperator (SIGTERM, waits), KillOperator
//     (SIGKILL), RestartOperator, OperatorRunning, OperatorPID, OperatorURL,
//     LogTail (last lines of operator.log), Log, LogSize/LogSince (the log
//     written after a mark).
//   - config: ConfigPath, ConfigYAML, WriteConfig (atomic: the operator's
//     watcher never sees half a file), EditConfig (decode, change, encode,
//     write), Spec (the file as the operator would load it, defaults applied).
//   - observing: Metrics (parsed /metrics: Get, Sum, Has, Samples), Status
//     (/api/status), Converged (a check: in sync, probe ok, every listed
//     agent in sync), AppTasks (the registry app's tasks in the emulator),
//     ServedSerial (dials the registry with TLS as a client would).
//   - Marathon: Sim (the emulator: KillTask, SetFault, SetAgents, ...),
//     MarathonURL, Marathon (an HTTP request to its API, as a human would
//     send with curl), AppID.
//   - agents: Agent(i), Agents (listed ones), Exec (a command inside an
//     agent), AddAgents (new fleet hosts, listed in Mesos), SetListed (in or
//     out of /master/slaves), RemoveAgent (unlisted and destroyed),
//     RegistryAgent, CAPath, ConntrackKey.
//   - images: Push (skopeo copy of a small generated OCI image from an
//     agent to docker://<registry address>/<ref>), Pull (skopeo copy from the
//     registry to an OCI layout on an agent); both return the manifest digest.
//     PushAs and PullAs do the same with Creds (a user, an authfile on the
//     agent, or explicitly none); Unauthorized tells a 401 apart.
//   - auth: EnableAuth (htpasswd with the ci user and pull credentials at
//     DockerTarGz, DockerConfig and MesosDockerConfig, all in the agents'
//     private directories; Options.Auth does it from the start),
//     CIPassword/SetCIPassword, PullCredentials (the user and password in
//     an agent's config.json).
//   - waiting: Wait (error naming what was expected, what was found last and
//     the operator's last 30 log lines), Eventually (the same as a test
//     failure).
//
// Needs root and: openssh-server, openssh-client, iproute2, util-linux,
// sudo, docker-registry and skopeo (hack/install-deps.sh installs them).
package sandbox
