#Requires -Version 7.4
<#
.SYNOPSIS
    What PowerShell remoting costs the module's event streams: the same cmdlet on the same workload,
    in this pwsh, through one SSH session, and fanned out to three hosts, in one run, with ratios.
.DESCRIPTION
    The hosts are the sshd of tests/Pester/TestSshHosts.ps1 on 127.0.0.1 (three sshd, three ports):
    every session's pwsh runs on this machine, so the fan-out's three hosts share its two cores with
    the workload and with this pwsh, which deserializes everything. Workloads, each Rounds times,
    alternating local / one session / fan-out, best round kept:
      trace  Start-SyscallTrace -FilePath syscalls spin N (N getppid, tests/Fixtures/syscalls.c): every
             event goes through the tracer, the remote pwsh, ssh and this pwsh's deserializer.
      exec   Watch-Exec on a storm of E execs (exec_helper storm), from the storm's start to the last
             event received here; in the fan-out every host sees every exec (3 E events).
      summary the same trace with -Summary: summed up where it runs, a few rows cross (its rate counts
             the system calls traced).
      symbol Get-ProcSymbol -Name malloc -Path libc.so* over every process: a bulk result.
    Also: a session's set-up time and an empty Invoke-Command's round trip.
.EXAMPLE
    bench/remoting/run.sh            # builds, then runs this in `dotnet pwsh` as root
#>
param([int] $Spin = 20000, [int] $Execs = 2000, [int] $Rounds = 3)
$ErrorActionPreference = 'Stop'
$repo = Resolve-Path (Join-Path $PSScriptRoot '..' '..')
. (Join-Path $repo 'tests' 'Pester' 'TestHelpers.ps1')
. (Join-Path $repo 'tests' 'Pester' 'TestSshHosts.ps1')
Import-Module $ModulePath
$work = Join-Path ([IO.Path]::GetTempPath()) "pslt-bench-remoting-$PID"
New-Item -ItemType Directory $work | Out-Null
$spinExe = Join-Path $work 'syscalls'; $stormExe = Join-Path $work 'exec_helper'
& cc -O1 -pthread -o $spinExe (Join-Path $FixtureSource 'syscalls.c'); if ($LASTEXITCODE) { throw 'cc failed' }
& cc -O2 -o $stormExe (Join-Path $FixtureSource 'exec_helper.c'); if ($LASTEXITCODE) { throw 'cc failed' }
# A program of our own to exec, so that -Name keeps other execs on the machine out (in the kernel).
$execTarget = Join-Path $work 'pslt-bench-true'
Copy-Item (Get-Command true -CommandType Application)[0].Source $execTarget

try {
    $t = [Diagnostics.Stopwatch]::StartNew()
    Start-TestSshHost -Count 3 -ModuleRoot (Split-Path (Split-Path (Resolve-Path $ModulePath).Path)) | Out-Null
    $sshdMs = $t.Elapsed.TotalMilliseconds
    $t.Restart(); $one = New-TestSshSession $SshHosts[0]; $sessionMs = $t.Elapsed.TotalMilliseconds
    $t.Restart(); $fleet = @(New-TestSshFleet); $fleetMs = $t.Elapsed.TotalMilliseconds
    Invoke-Command -Session (@($one) + $fleet) { Import-Module PSLinuxTrace } | Out-Null
    $trips = foreach ($i in 1..20) { (Measure-Command { Invoke-Command -Session $one { } }).TotalMilliseconds }
    $tripMs = ($trips | Sort-Object)[10]

    # Each returns @{ Events; Seconds } for one run of a workload where it runs.
    $trace = @{
        local  = { $n = (Start-SyscallTrace -FilePath $spinExe -ArgumentList spin, $Spin | Measure-Object).Count; $n }
        remote = { param($s) (Invoke-Command -Session $s -ArgumentList $spinExe, $Spin { param($e, $n) Start-SyscallTrace -FilePath $e -ArgumentList spin, $n } | Measure-Object).Count }
    }
    function Measure-Trace([object[]] $Session) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $n = if ($Session) { & $trace.remote $Session } else { & $trace.local }
        @{ Events = $n; Seconds = $sw.Elapsed.TotalSeconds }
    }
    # The storm starts once every watch says its programs are attached (its verbose line, turned into an
    # output string where it runs); the clock runs from there to the last event received here.
    function Measure-Exec([object[]] $Session) {
        $watch = {
            param($name, $count)
            Watch-Exec -Name $name -Count $count -Timeout 120 -Verbose 4>&1 | ForEach-Object {
                if ($_ -isnot [System.Management.Automation.VerboseRecord]) { $_ } elseif ($_.Message -like 'Watching execve/execveat*') { 'attached' }
            }
        }
        $hosts = if ($Session) { $Session.Count } else { 1 }
        $ready = 0; $events = 0; $start = $null; $last = $null
        $name = Split-Path -Leaf $execTarget
        & { if ($Session) { Invoke-Command -Session $Session -ScriptBlock $watch -ArgumentList $name, $Execs } else { & $watch $name $Execs } } | ForEach-Object {
            if ($_ -is [string]) {
                if (++$ready -eq $hosts) {
                    $start = [Diagnostics.Stopwatch]::StartNew()
                    Start-Process -FilePath $stormExe -ArgumentList storm, $Execs, $execTarget, bench | Out-Null
                }
            } else { $events++; $last = $start.Elapsed.TotalSeconds }
        }
        if ($events -lt $hosts * $Execs) { throw "exec: $events of $($hosts * $Execs) events arrived" }
        @{ Events = $events; Seconds = $last }
    }
    # The same trace summed up where it runs (-Summary): a few rows cross instead of every event.
    # Its rate counts the system calls traced, so that it compares with the trace rows.
    function Measure-Summary([object[]] $Session) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $block = { param($e, $n) Start-SyscallTrace -FilePath $e -ArgumentList spin, $n -Summary }
        $rows = if ($Session) { Invoke-Command -Session $Session -ScriptBlock $block -ArgumentList $spinExe, $Spin } else { & $block $spinExe $Spin }
        @{ Events = [long](@($rows | Measure-Object -Property Calls -Sum).Sum); Seconds = $sw.Elapsed.TotalSeconds }
    }
    function Measure-Symbol([object[]] $Session) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $block = { Get-ProcSymbol -Name malloc -Path 'libc.so*' -WarningAction SilentlyContinue }   # pid 1 is skipped, with a warning
        $n = if ($Session) { (Invoke-Command -Session $Session -ScriptBlock $block | Measure-Object).Count } else { (& $block | Measure-Object).Count }
        @{ Events = $n; Seconds = $sw.Elapsed.TotalSeconds }
    }

    $where = [ordered]@{ 'this pwsh' = $null; '1 session' = @($one); '3-host fan-out' = $fleet }
    $results = @{}
    foreach ($w in 'trace', 'summary', 'exec', 'symbol') {
        $measure = Get-Command "Measure-$((Get-Culture).TextInfo.ToTitleCase($w))"
        foreach ($k in $where.Keys) { & $measure $where[$k] | Out-Null }   # warm-up: JIT, module load, BPF verifier caches
        for ($r = 1; $r -le $Rounds; $r++) {
            foreach ($k in $where.Keys) {
                $m = & $measure $where[$k]
                $rate = $m.Events / $m.Seconds
                if (-not $results["$w|$k"] -or $rate -gt $results["$w|$k"].Rate) { $results["$w|$k"] = @{ Rate = $rate; Events = $m.Events; Seconds = $m.Seconds } }
            }
        }
    }

    "PSLinuxTrace over PowerShell remoting (SSH, 127.0.0.1), best of $Rounds rounds; pwsh $($PSVersionTable.PSVersion), $([Environment]::ProcessorCount) CPUs"
    "start 3 sshd: {0:N0} ms; open 1 session: {1:N0} ms; open 3 sessions at once: {2:N0} ms; empty Invoke-Command round trip: {3:N1} ms" -f $sshdMs, $sessionMs, $fleetMs, $tripMs
    ''
    '{0,-7} {1,-15} {2,9} {3,9} {4,12} {5,11}' -f 'work', 'where', 'events', 'seconds', 'events/s', 'vs local'
    foreach ($w in 'trace', 'summary', 'exec', 'symbol') {
        $local = $results["$w|this pwsh"].Rate
        foreach ($k in $where.Keys) {
            $x = $results["$w|$k"]
            '{0,-7} {1,-15} {2,9} {3,9:N3} {4,12:N0} {5,11:N2}' -f $w, $k, $x.Events, $x.Seconds, $x.Rate, ($x.Rate / $local)
        }
    }
    ''
    "trace: $Spin getppid traced (about $($Spin + 40) events a run); summary: system calls traced and summed up there; exec: $Execs execs, every host sees all of them (the storm sets the pace); symbol: malloc in every process that maps libc."
} finally {
    Stop-TestSshHost
    Remove-Item -Recurse -Force $work -ErrorAction Ignore
}
