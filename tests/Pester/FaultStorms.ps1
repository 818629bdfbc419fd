# The campaign's loads: an exec storm through Watch-Exec and millions of syscall events through
# Start-SyscallTrace. Dot-sourced by FaultCampaign.ps1.

# exec_storm spawns about Rate execs a second for Seconds (Workers processes); Watch-Exec with the default
# buffer must write every one, or say how many it lost (never silently fewer). The expected count is the
# workload's own (its successful posix_spawn calls); lost is the watch's own count (its summary).
function Invoke-ExecStormFault([int] $Rate, [double] $Seconds, [int] $Workers = 8) {
    $marker = "pslt-storm-$([guid]::NewGuid().ToString('N'))"
    $out = Join-Path $FaultWork "storm-$marker.out"
    $go = Join-Path $FaultWork "go-$marker"
    $storm = Start-Shell "while [ ! -e '$go' ]; do sleep 0.02; done; exec '$ExecStorm' $Rate $Seconds $Workers $marker > '$out'"
    $seen = [ref]0; $lost = [ref]-1
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    Watch-Exec -Name exec_storm -Timeout ($Seconds + 3) -Verbose 4>&1 -WarningAction SilentlyContinue | ForEach-Object {
        if ($_ -is [System.Management.Automation.VerboseRecord]) {
            if ($_.Message -like 'Watching execve/execveat*') { New-Item -ItemType File -Path $go | Out-Null }
            elseif ($_.Message -match ' (\d+) lost \(ring buffer full\)') { $lost.Value = [long]$Matches[1] }
        } elseif ($_.Argv.Count -ge 3 -and $_.Argv[1] -eq 'noop' -and $_.Argv[2] -eq $marker) { $seen.Value++ }
    }
    $storm.WaitForExit()
    $expected = [long]((Get-Content $out -ErrorAction Ignore) -replace '^execs=', '')
    $failures = @(
        if ($expected -le 0) { 'the storm ran no exec' }
        if ($lost.Value -lt 0) { 'the watch wrote no summary of lost events' }
        if ($seen.Value -gt $expected) { "the watch wrote $($seen.Value) execs of $expected" }
        elseif ($seen.Value -lt $expected -and $lost.Value -lt $expected - $seen.Value) { "$($expected - $seen.Value) exec(s) missing, only $($lost.Value) reported lost" }
    )
    Remove-Item $out, $go -ErrorAction Ignore
    $rate = [math]::Round($expected / $Seconds)
    New-FaultResult 'exec-storm' 1 ([int](-not $failures)) $failures @() "execs=$expected rate_per_s=$rate seen=$($seen.Value) lost_reported=$($lost.Value) seconds=$Seconds buffer=default"
}

# Events getppid calls traced with one engine; every one must arrive (or be counted by a lost-events object
# in the stream), and the RSS of this pwsh and of the tracer process must stay flat: sampled every 5% of the
# events, growth is the largest sample after the first 20% minus the sample at 20%.
function Invoke-SyscallVolumeFault([long] $Events, [ValidateSet('Bpf', 'Ptrace')] [string] $Engine, [int] $FlatMiB = 32) {
    $state = @{ Seen = [long]0; Lost = [long]0; Pwsh = [System.Collections.Generic.List[long]]::new(); Tracer = [System.Collections.Generic.List[long]]::new() }
    $every = [math]::Max(1, [long]($Events / 20))
    function Get-RssKb([int] $Id) { [long]((Get-ProcStatusField $Id VmRSS -ErrorAction Ignore) -replace '\D', '') }
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    Start-SyscallTrace -FilePath $Syscalls -ArgumentList spin, $Events -Syscall getppid -Engine $Engine -WarningAction SilentlyContinue | . {
        process {
            if ($_.EventType -eq 'Syscall') { $state.Seen++ } elseif ($_.EventType -eq 'LostEvents') { $state.Lost += $_.Count }
            if ($state.Seen % $every -eq 0) {
                $state.Pwsh.Add((Get-RssKb $PID))
                $tracer = Get-TracerProcess | Where-Object { $_.ParentId -eq $PID -and $_.State -ne 'Z' } | Select-Object -First 1
                if ($tracer) { $state.Tracer.Add((Get-RssKb $tracer.Id)) }
            }
        }
    }
    $seconds = $clock.Elapsed.TotalSeconds
    function Get-Growth($Samples) {
        if ($Samples.Count -lt 5) { return 0 }
        $from = [int]($Samples.Count / 5)
        (($Samples | Select-Object -Skip $from | Measure-Object -Maximum).Maximum - $Samples[$from]) / 1024
    }
    $pwshGrowth = [math]::Round((Get-Growth $state.Pwsh), 1); $tracerGrowth = [math]::Round((Get-Growth $state.Tracer), 1)
    $failures = @(
        # Lost counts every record the kernel dropped (a process event too), so it may exceed the calls missing.
        if ($state.Seen -gt $Events -or $state.Seen + $state.Lost -lt $Events) { "$($state.Seen) events and $($state.Lost) reported lost of $Events" }
        if ($pwshGrowth -gt $FlatMiB) { "pwsh RSS grew $pwshGrowth MiB" }
        if ($tracerGrowth -gt $FlatMiB) { "tracer RSS grew $tracerGrowth MiB" }
    )
    $rss = "pwsh_rss_mib=$([math]::Round($state.Pwsh[-1] / 1024)) growth=$pwshGrowth tracer_rss_mib=$(if ($state.Tracer.Count) { [math]::Round($state.Tracer[-1] / 1024) } else { 'none' }) growth=$tracerGrowth"
    New-FaultResult "syscall-volume-$($Engine.ToLower())" 1 ([int](-not $failures)) $failures @() "events=$Events seen=$($state.Seen) lost=$($state.Lost) events_per_s=$([math]::Round($Events / $seconds)) $rss"
}
