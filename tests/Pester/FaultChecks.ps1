# What the fault campaign verifies after a fault: the target (Test-FaultTarget) and what this session and
# the machine hold (Get-LeakBaseline, Compare-LeakBaseline). Dot-sourced by FaultCampaign.ps1.

# The state letter of a task: the field after the last ')' of /proc/PID/task/TID/stat (comm may hold ')').
function Get-TaskState([string] $StatPath) {
    $stat = Get-Content -Raw $StatPath -ErrorAction Ignore
    if (-not $stat) { return $null }
    $stat.Substring($stat.LastIndexOf(')') + 2, 1)
}

# Failures of a target that must have survived: gone, stopped (a thread in t/T), traced, a wrong checksum
# or one that stopped advancing, or a zombie child (the churn fixture reaps each child at once, so one that
# stays a zombie for a second is one we left).
function Test-FaultTarget($Target) {
    $id = $Target.Id
    $state = Get-TaskState "/proc/$id/stat"
    if (-not $state -or $state -in 'Z', 'X') { return @("target $id is gone (state '$state')") }
    $failures = [System.Collections.Generic.List[string]]::new()
    $tracer = Get-ProcStatusField $id TracerPid
    if ($tracer -ne '0') { $failures.Add("target $id is still traced by $tracer") }
    $stopped = @(Get-ChildItem "/proc/$id/task" -ErrorAction Ignore | Where-Object { (Get-TaskState "$($_.FullName)/stat") -in 't', 'T' })
    if ($stopped) { $failures.Add("target $id has stopped thread(s) $($stopped.Name -join ',')") }
    $status = Get-ChecksumStatus $Target
    if (-not $status) { $failures.Add("target $id does not answer") }
    else {
        if ($status.Errors -ne 0) { $failures.Add("target $id counted $($status.Errors) checksum/system call error(s)") }
        if ($status.Rounds -le $Target.Rounds) { $failures.Add("target $id stopped computing (rounds $($status.Rounds))") }
        $Target.Rounds = $status.Rounds
    }
    $deadline = [DateTime]::UtcNow.AddSeconds(1)
    do {
        $zombies = @(Get-ChildId $id | Where-Object { (Get-TaskState "/proc/$_/stat") -eq 'Z' })
        if (-not $zombies) { break }
        Start-Sleep -Milliseconds 20
    } while ([DateTime]::UtcNow -lt $deadline)
    if ($zombies) { $failures.Add("target $id has zombie child(ren) $($zombies -join ',')") }
    $failures
}

# Processes whose comm is the tracer's (15 characters of pslinuxtrace-tracer), with parent and state.
function Get-TracerProcess {
    foreach ($dir in Get-ChildItem /proc -Directory -ErrorAction Ignore | Where-Object Name -match '^\d+$') {
        $comm = Get-Content "$($dir.FullName)/comm" -ErrorAction Ignore
        if ($comm -ne 'pslinuxtrace-tr') { continue }
        $state = Get-TaskState "$($dir.FullName)/stat"
        $ppid = try { Get-ProcStatusField ([int]$dir.Name) PPid } catch { continue }   # it exited meanwhile
        if ($state) { [pscustomobject]@{ Id = [int]$dir.Name; ParentId = [int]$ppid; State = $state } }
    }
}

# Living processes running the given executable (a snapshot's twin outliving its target, a launched target).
function Get-ProcessOfExe([string] $Path) {
    foreach ($dir in Get-ChildItem /proc -Directory -ErrorAction Ignore | Where-Object Name -match '^\d+$') {
        $exe = (Get-Item "$($dir.FullName)/exe" -ErrorAction Ignore).LinkTarget
        if ($exe -ne $Path) { continue }
        if ((Get-TaskState "$($dir.FullName)/stat") -notin $null, 'Z', 'X') { [int]$dir.Name }
    }
}

function Get-BpftoolCount([string] $Kind) {
    $json = & bpftool $Kind list -j 2>$null | Out-String
    if (-not $json.Trim()) { return 0 }
    @($json | ConvertFrom-Json).Count
}

# What this session holds and the machine counts: our fds by target, tracer processes we started, our
# BPF and perf fds, the machine's BPF programs/maps/links (informative: other work loads its own), and
# temporary files of ours.
function Get-LeakBaseline {
    [System.GC]::Collect(); [System.GC]::WaitForPendingFinalizers()
    [pscustomobject]@{
        Fds = @(Get-ChildItem "/proc/$PID/fd" -ErrorAction Ignore | ForEach-Object { $_.LinkTarget })
        BpfFds = Get-BpfFdCount
        Bpf = 'prog', 'map', 'link' | ForEach-Object { "$_=$(Get-BpftoolCount $_)" }
        Temp = @(Get-ChildItem ([System.IO.Path]::GetTempPath()) -Force -ErrorAction Ignore |
            Where-Object Name -match 'pslinuxtrace|pslt-(?!faults|pester|fixtures)' | ForEach-Object FullName)
    }
}

# The leaks since Baseline: fds this pwsh opened and kept (by target), BPF/perf fds, tracer processes that
# still run or that this pwsh left as zombies, new temporary files. Waits a little for asynchronous cleanup.
function Compare-LeakBaseline($Baseline, [string[]] $AllowedTemp = @()) {
    if (-not $Baseline) { return }   # a run of one injection has nothing to compare with
    $deadline = [DateTime]::UtcNow.AddSeconds(3)
    do {
        $now = Get-LeakBaseline
        $leaks = [System.Collections.Generic.List[string]]::new()
        # An assembly the runtime maps on first use stays mapped (and open) for good: not a leak of ours.
        $extraFds = @(Compare-Object @($Baseline.Fds | Sort-Object) @($now.Fds | Sort-Object) | Where-Object SideIndicator -eq '=>' |
            ForEach-Object InputObject | Where-Object { $_ -notlike '*.dll' })
        if ($extraFds) { $leaks.Add("pwsh holds $($extraFds.Count) more fd(s): $(($extraFds | Select-Object -First 5) -join ', ')") }
        if ($now.BpfFds -gt $Baseline.BpfFds) { $leaks.Add("pwsh holds $($now.BpfFds - $Baseline.BpfFds) more BPF/perf fd(s)") }
        $ours = @(Get-TracerProcess | Where-Object ParentId -eq $PID)
        if ($ours) { $leaks.Add("tracer process(es) of this pwsh remain: $(($ours | ForEach-Object { "$($_.Id)/$($_.State)" }) -join ', ')") }
        $temp = @($now.Temp | Where-Object { $_ -notin $Baseline.Temp -and $_ -notin $AllowedTemp })
        if ($temp) { $leaks.Add("new temporary file(s): $($temp -join ', ')") }
        if (-not $leaks.Count) { break }
        Start-Sleep -Milliseconds 100
    } while ([DateTime]::UtcNow -lt $deadline)
    $leaks
}
