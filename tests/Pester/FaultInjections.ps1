# The faults of the campaign, one function each; each returns New-FaultResult. Dot-sourced by FaultCampaign.ps1.
# Leaks are counted from a baseline taken halfway (Get-BaselineRun), once the runtime has loaded what it loads
# lazily and the one idle symbolizer (SymbolizerPool) holds its files: growth in the second half is a leak.
function Get-BaselineRun([int] $Count) { [math]::Max(1, [math]::Floor($Count / 2)) }

# Count snapshots in a row of a busy checksumming process with one method; -Churn: while it forks and
# starts threads. Each must succeed and leave the target running, untraced and computing correctly.
function Invoke-SnapshotFault([int] $Count, [string] $Method, [switch] $Churn) {
    $target = Start-Checksum 4 -Churn:$Churn
    $core = Join-Path $FaultWork "snap-$Method.core"
    $failures = [System.Collections.Generic.List[string]]::new()
    $survived = 0
    try {
        for ($i = 0; $i -lt $Count; $i++) {
            if ($i -eq (Get-BaselineRun $Count)) { $baseline = Get-LeakBaseline }
            $err = $null
            $snap = Save-ProcessSnapshot -Id $target.Id -Path $core -Method $Method -Force -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
            $now = @(if ($err) { "snapshot $i failed: $($err[0].FullyQualifiedErrorId): $($err[0])" }
                elseif (-not $snap -or (Get-Item $core).Length -ne $snap.Bytes) { "snapshot $i wrote no complete file" })
            $now += @(Test-FaultTarget $target | ForEach-Object { "after snapshot ${i}: $_" })
            if ($now) { $failures.AddRange([string[]]$now) } else { $survived++ }
        }
        Remove-Item $core -ErrorAction Ignore
        $leaks = Compare-LeakBaseline $baseline
    } finally { Stop-Checksum $target }
    New-FaultResult "snapshot-$Method$(if ($Churn) { '-churn' })" $Count $survived $failures $leaks
}

# The target killed with SIGKILL at a random point of an operation (Trace, Snapshot, Stack), Count times.
# Each run either finishes before the kill (a trace then ends with the target's exit, killed by SIGKILL)
# or ends with ProcessNotFound (ObjectNotFound); never another error, a partial core, a tracer left
# running, or a twin outliving its target.
function Invoke-KillFault([int] $Count, [ValidateSet('Trace', 'Snapshot', 'Stack')] [string] $Operation) {
    $window = @{ Trace = 0.2; Snapshot = 0.3; Stack = 0.05 }[$Operation]   # the attach of a trace: its first ~0.2 s
    $command = @{ Trace = 'Start-SyscallTrace'; Snapshot = 'Save-ProcessSnapshot'; Stack = 'Get-ProcessStack' }[$Operation]
    $core = Join-Path $FaultWork 'killed.core'
    $failures = [System.Collections.Generic.List[string]]::new()
    $survived = 0; $errors = 0
    if ($Operation -eq 'Stack') {
        # Warm the one idle symbolizer with the fixture's files, whatever the first kills interrupt.
        $warm = Start-Checksum 1; Get-ProcessStack -Id $warm.Id | Out-Null; Stop-Checksum $warm
    }
    for ($i = 0; $i -lt $Count; $i++) {
        if ($i -eq (Get-BaselineRun $Count)) { $baseline = Get-LeakBaseline }
        $target = Start-Checksum 2
        $killer = Start-Killer $target.Id $window
        $err = $null
        $out = @(switch ($Operation) {
                'Trace' { Start-SyscallTrace -Id $target.Id -Timeout 10 -ErrorVariable err -ErrorAction SilentlyContinue }
                'Snapshot' { Save-ProcessSnapshot -Id $target.Id -Path $core -Force -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue }
                'Stack' { Get-ProcessStack -Id $target.Id -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue }
            })
        $killer.WaitForExit(); $killer.Dispose()
        $target.Process.WaitForExit(5000) | Out-Null
        $now = [System.Collections.Generic.List[string]]::new()
        if ($err) {
            $errors++
            $expected = Get-QualifiedId ProcessNotFound $command
            if ($err[0].FullyQualifiedErrorId -ne $expected -or "$($err[0].CategoryInfo.Category)" -ne 'ObjectNotFound') {
                $now.Add("run ${i}: $($err[0].FullyQualifiedErrorId) ($($err[0].CategoryInfo.Category)): $($err[0])")
            }
            if ($Operation -eq 'Snapshot' -and (Test-Path $core)) { $now.Add("run ${i}: a partial core remains") }
        } elseif ($Operation -eq 'Trace' -and -not ($out | Where-Object { $_.EventType -eq 'ProcessExit' -and $_.Pid -eq $target.Id -and $_.Signal -eq 'SIGKILL' })) {
            $now.Add("run ${i}: the trace ended without an error and without the target's SIGKILL exit")
        }
        if (-not $target.Process.HasExited) { $now.Add("run ${i}: the target did not die") }
        $alive = @(Get-ProcessOfExe $Checksum)
        if ($alive) { $now.Add("run ${i}: process(es) of the fixture outlive the target: $($alive -join ',')"); $alive | ForEach-Object { & kill -KILL $_ } }
        $tracers = @(Get-TracerProcess | Where-Object ParentId -eq $PID)
        if ($tracers) { $now.Add("run ${i}: tracer process(es) remain: $($tracers.Id -join ',')") }
        $target.Process.Dispose()
        Remove-Item $core -ErrorAction Ignore
        if ($now.Count) { $failures.AddRange($now) } else { $survived++ }
    }
    $leaks = Compare-LeakBaseline $baseline
    New-FaultResult "kill-during-$($Operation.ToLower())" $Count $survived $failures $leaks "process_not_found=$errors finished_first=$($Count - $errors)"
}

# The disk filling up mid-snapshot: a tmpfs of 8 MiB, a target with 16 MiB in its heap. Each run must give
# one error with a stable id and category, remove the partial file and leave the target running.
function Invoke-DiskFullFault([int] $Count) {
    $mount = Join-Path $FaultWork 'full'
    New-Item -ItemType Directory -Path $mount -Force | Out-Null
    & mount -t tmpfs -o size=8m pslt-faults-full $mount
    if ($LASTEXITCODE -ne 0) { throw "could not mount a tmpfs on $mount" }
    $target = Start-Checksum 2
    $failures = [System.Collections.Generic.List[string]]::new()
    $survived = 0; $ids = @{}
    try {
        $methods = 'CloneTwin', 'WriteTracked'
        for ($i = 0; $i -lt $Count; $i++) {
            if ($i -eq (Get-BaselineRun $Count)) { $baseline = Get-LeakBaseline }
            $core = Join-Path $mount 'core'
            $err = $null
            $snap = Save-ProcessSnapshot -Id $target.Id -Path $core -Method $methods[$i % 2] -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
            $now = [System.Collections.Generic.List[string]]::new()
            if ($snap -or -not $err) { $now.Add("run ${i}: the snapshot did not fail") }
            else {
                $ids["$($err[0].FullyQualifiedErrorId)/$($err[0].CategoryInfo.Category)"] = 1
                if ($err[0].FullyQualifiedErrorId -ne (Get-QualifiedId DiskFull Save-ProcessSnapshot) -or "$($err[0].CategoryInfo.Category)" -ne 'WriteError') {
                    $now.Add("run ${i}: $($err[0].FullyQualifiedErrorId) ($($err[0].CategoryInfo.Category)): $($err[0])")
                }
            }
            $left = @(Get-ChildItem -Force $mount)
            if ($left) { $now.Add("run ${i}: left $($left.Name -join ', ') on the full disk"); $left | Remove-Item -Force }
            Test-FaultTarget $target | ForEach-Object { $now.Add("run ${i}: $_") }
            if ($now.Count) { $failures.AddRange($now) } else { $survived++ }
        }
        $leaks = Compare-LeakBaseline $baseline
    } finally {
        Stop-Checksum $target
        & umount $mount
    }
    New-FaultResult 'disk-full' $Count $survived $failures $leaks "errors=$($ids.Keys -join ',')"
}
