#!/usr/bin/env bash
# The fault campaign of issue 17 at full counts: the functions tests/Pester/Faults.Tests.ps1 runs at CI
# counts (tests/Pester/FaultCampaign.ps1), in a real pwsh, one result line per fault:
#   fault=NAME count=N survived=N failures=N leaks=N details...
# Usage: bench/faults/run.sh [all|snapshot|kill|diskfull|pwshkill|watchcycle|execstorm|volume]...
# Counts (environment): SNAPSHOTS=200 (per method, idle and churning), KILLS=200 (per operation),
# DISKFULL=20, PWSHKILLS=20 (per engine, attach and launch alternating), CYCLES=1000, STORM_RATE=10000,
# STORM_SECONDS=60, EVENTS=10000000 (per engine). Needs root, a built module (dotnet build), cc, bpftool.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
: "${SNAPSHOTS:=200}" "${KILLS:=200}" "${DISKFULL:=20}" "${PWSHKILLS:=20}" "${CYCLES:=1000}"
: "${STORM_RATE:=10000}" "${STORM_SECONDS:=60}" "${EVENTS:=10000000}"
if [ -n "${PWSH:-}" ]; then pwsh=($PWSH); elif [ -x /work/tools/pwsh ]; then pwsh=(/work/tools/pwsh); else pwsh=(dotnet pwsh); fi
[ -f out/PSLinuxTrace/PSLinuxTrace.psd1 ] || { echo "build the module first: dotnet build PSLinuxTrace.sln"; exit 1; }
[ -e /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

calls=()
for fault in "${@:-all}"; do
  case "$fault" in
    all) set -- snapshot kill diskfull pwshkill watchcycle execstorm volume; for f in "$@"; do "$0" "$f" || true; done; exit 0 ;;
    snapshot) for m in Auto CloneTwin WriteTracked; do
                calls+=("Invoke-SnapshotFault -Count $SNAPSHOTS -Method $m" "Invoke-SnapshotFault -Count $SNAPSHOTS -Method $m -Churn"); done ;;
    kill) for o in Trace Snapshot Stack; do calls+=("Invoke-KillFault -Count $KILLS -Operation $o"); done ;;
    diskfull) calls+=("Invoke-DiskFullFault -Count $DISKFULL") ;;
    pwshkill) calls+=("Invoke-PwshKillFault -Count $PWSHKILLS -Engine Ptrace" "Invoke-PwshKillFault -Count $PWSHKILLS -Engine Bpf") ;;
    watchcycle) calls+=("Invoke-WatchCycleFault -Count $CYCLES") ;;
    execstorm) calls+=("Invoke-ExecStormFault -Rate $STORM_RATE -Seconds $STORM_SECONDS") ;;
    volume) calls+=("Invoke-SyscallVolumeFault -Events $EVENTS -Engine Bpf" "Invoke-SyscallVolumeFault -Events $EVENTS -Engine Ptrace") ;;
    *) echo "unknown fault '$fault' (all|snapshot|kill|diskfull|pwshkill|watchcycle|execstorm|volume)"; exit 2 ;;
  esac
done

script=". '$root/tests/Pester/FaultCampaign.ps1'; Initialize-FaultCampaign; \$failed = 0"
for c in "${calls[@]}"; do
  script+="; \$t = [Diagnostics.Stopwatch]::StartNew(); \$r = $c; \$r | Format-FaultResult | ForEach-Object { if (\$_ -like 'fault=*') { \"\$_ seconds=\$([math]::Round(\$t.Elapsed.TotalSeconds))\" } else { \$_ } }"
  script+="; if (\$r.Failures.Count -or \$r.Leaks.Count -or \$r.Survived -ne \$r.Count) { \$failed++ }"
done
script+="; Remove-FaultCampaign; exit [int](\$failed -gt 0)"
"${pwsh[@]}" -NoProfile -NonInteractive -Command "$script"
