#!/usr/bin/env bash
# Remoting benchmark: the same cmdlets on the same workloads in this pwsh, through one SSH session and
# fanned out to three hosts (three sshd on 127.0.0.1 from tests/Pester/TestSshHosts.ps1), in one run,
# printing events per second and the ratio to the local run (see Remoting.Bench.ps1's help).
# Needs root, cc, sshd (openssh-server), ssh-keygen, dotnet. SPIN=20000 getppid, EXECS=2000, ROUNDS=3.
set -uo pipefail
cd "$(dirname "$0")/../.."
dotnet build PSLinuxTrace.sln -c Release -v q -nologo >/dev/null || { echo "build failed"; exit 1; }
dotnet tool restore >/dev/null || exit 1
exec dotnet pwsh -NoProfile -NonInteractive -File bench/remoting/Remoting.Bench.ps1 -Spin "${SPIN:-20000}" -Execs "${EXECS:-2000}" -Rounds "${ROUNDS:-3}" </dev/null
