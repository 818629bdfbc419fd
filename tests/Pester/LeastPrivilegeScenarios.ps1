# Run by LeastPrivilege.Tests.ps1 in a child pwsh with the credentials of a scenario set (-Mode): each scenario
# runs one cmdlet the way a user would and records what came of it (the error's category, id, message and
# missing capability, or what it returned, and the BPF fds and child processes of this pwsh afterwards) as
# one JSON record in -Result. The test file checks the records as root. Not a Pester file.
param(
    [Parameter(Mandatory)] [ValidateSet('NoCaps', 'Bpf', 'BpfWithoutDac', 'RootWithoutPtrace')] [string] $Mode,
    [Parameter(Mandatory)] [string] $Module,
    [Parameter(Mandatory)] [string] $Result,
    [Parameter(Mandatory)] [string] $Out,
    [int] $RootSymbolsPid, [int] $RootLoopPid, [int] $UserSymbolsPid, [int] $UserLoopPid,
    [string] $RootCore, [string] $UserCore, [string] $Marker
)
$ErrorActionPreference = 'Stop'
Import-Module $Module

function Get-BpfFdCount {
    @(Get-ChildItem "/proc/$PID/fd" -ErrorAction Ignore | Where-Object { $_.LinkTarget -like 'anon_inode:bpf*' -or $_.LinkTarget -eq 'anon_inode:[perf_event]' }).Count
}
function Get-ChildId {
    $text = Get-Content "/proc/$PID/task/$PID/children" -Raw -ErrorAction Ignore
    @(if ($text) { $text -split ' ' | Where-Object { $_ } | ForEach-Object { [int]$_ } })
}

$records = [System.Collections.Generic.List[object]]::new()
# Runs $Body; a terminating error (every cmdlet runs with -ErrorAction Stop) ends it and is recorded.
function Invoke-Scenario([string] $Name, [scriptblock] $Body) {
    $outBefore = @(Get-ChildItem -LiteralPath $Out -Name | Sort-Object)
    $record = [ordered]@{ Name = $Name; Failed = $false; Category = $null; ErrorId = $null; Message = $null; MissingCapability = $null; RecommendedAction = $null; Data = $null }
    try { $record.Data = & $Body }
    catch {
        $record.Failed = $true
        $record.Category = "$($_.CategoryInfo.Category)"
        $record.ErrorId = $_.FullyQualifiedErrorId
        $record.Message = $_.Exception.Message
        $record.ExceptionType = $_.Exception.GetType().FullName
        if ($_.Exception.PSObject.Properties['MissingCapability']) { $record.MissingCapability = $_.Exception.MissingCapability }
        $record.RecommendedAction = $_.ErrorDetails.RecommendedAction
    }
    Start-Sleep -Milliseconds 50   # a tracer process that outlived its cmdlet would still show
    $record.BpfFds = Get-BpfFdCount
    $record.Children = @(Get-ChildId | ForEach-Object { (Get-Content "/proc/$_/comm" -ErrorAction Ignore) })
    $record.OutAdded = @(Get-ChildItem -LiteralPath $Out -Name | Sort-Object | Where-Object { $_ -notin $outBefore })
    $records.Add([pscustomobject]$record)
}

$status = Get-Content /proc/self/status
$credentials = [pscustomobject]@{ Name = 'Credentials'; Data = @{
    Uid = ($status | Where-Object { $_ -like 'Uid:*' }) -replace '\s+', ' '
    CapEff = (($status | Where-Object { $_ -like 'CapEff:*' }) -split '\s+')[1]
    BpfFds = Get-BpfFdCount } }
$records.Add($credentials)

switch ($Mode) {
    'NoCaps' {
        # Another user's (root's) processes: refused, for the uid rule.
        Invoke-Scenario 'ProcSymbolOther' { Get-ProcSymbol -Id $RootSymbolsPid -Name pslt_function }
        Invoke-Scenario 'StackOther' { Get-ProcessStack -Id $RootSymbolsPid }
        Invoke-Scenario 'TraceOther' { Start-SyscallTrace -Id $RootLoopPid -Engine Ptrace -Timeout 1 }
        Invoke-Scenario 'SnapshotOther' { Save-ProcessSnapshot -Id $RootSymbolsPid -Path (Join-Path $Out 'other.core') }
        Invoke-Scenario 'CoreOther' { Read-CoreDump -LiteralPath $RootCore }
        # Files it may not write: refused for the directory's mode, and a launched program does not outlive it.
        Invoke-Scenario 'SnapshotUnwritable' { Save-ProcessSnapshot -Id $UserSymbolsPid -Path /etc/pslt-lp-own.core }
        Invoke-Scenario 'SnapshotLaunchUnwritable' { Save-ProcessSnapshot -FilePath /bin/sleep -ArgumentList 5 -Path /etc/pslt-lp-launch.core }
        # Its own pwsh: not traceable by the module's own rule; its stack is readable (the tracer is another process).
        Invoke-Scenario 'TraceSelf' { Start-SyscallTrace -Id $PID -Timeout 1 }
        Invoke-Scenario 'StackSelf' { @{ Threads = (Get-ProcessStack -Id $PID).Threads.Count } }
        # eBPF: refused for the capabilities.
        Invoke-Scenario 'TraceBpf' { Start-SyscallTrace -FilePath /bin/true -Engine Bpf }
        Invoke-Scenario 'WatchExec' { Watch-Exec -Timeout 1 }
        # Its own processes: they work.
        Invoke-Scenario 'ProcSymbolOwn' { @{ Address = [uint64](Get-ProcSymbol -Id $UserSymbolsPid -Name pslt_function).Address } }
        Invoke-Scenario 'StackOwn' { @{ Functions = @((Get-ProcessStack -Id $UserSymbolsPid).Threads[0].Frames.Symbol) } }
        Invoke-Scenario 'TraceLaunch' {
            $events = Start-SyscallTrace -FilePath /bin/true -Engine Ptrace
            @{ Names = @($events | Where-Object EventType -eq Syscall | ForEach-Object Name | Select-Object -Unique); Engines = @($events.Engine | Select-Object -Unique) }
        }
        Invoke-Scenario 'TraceOwn' {
            $events = Start-SyscallTrace -Id $UserLoopPid -Engine Ptrace -Syscall getppid -Timeout 1
            @{ Calls = @($events | Where-Object { $_.EventType -eq 'Syscall' -and $_.Name -eq 'getppid' }).Count; Pids = @($events.Pid | Select-Object -Unique) }
        }
        Invoke-Scenario 'TraceAuto' {
            $all = Start-SyscallTrace -FilePath /bin/true -Syscall execve -Verbose 4>&1
            @{ Verbose = @($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
               Engines = @($all | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] } | ForEach-Object Engine | Select-Object -Unique)
               Execve = @($all | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] -and $_.Name -eq 'execve' }).Count }
        }
        Invoke-Scenario 'SnapshotOwn' {
            $s = Save-ProcessSnapshot -Id $UserSymbolsPid -Path (Join-Path $Out 'own.core')
            @{ Path = $s.Path; Pid = $s.Pid; Method = $s.Method }
        }
        Invoke-Scenario 'SnapshotOwnWriteTracked' {
            $s = Save-ProcessSnapshot -Id $UserSymbolsPid -Path (Join-Path $Out 'own-tracked.core') -Method WriteTracked
            @{ Path = $s.Path; Pid = $s.Pid; Method = $s.Method }
        }
        Invoke-Scenario 'SnapshotLaunchOwn' {
            $s = Save-ProcessSnapshot -FilePath /bin/sleep -ArgumentList 5 -Path (Join-Path $Out 'launch.core')
            @{ Path = $s.Path; Method = $s.Method }
        }
        Invoke-Scenario 'ProcSymbolAll' {
            $found = @(Get-ProcSymbol -Name pslt_function -WarningVariable warnings -WarningAction SilentlyContinue)
            @{ Pids = @($found.Pid); Warnings = @($warnings | ForEach-Object { "$_" }) }
        }
        Invoke-Scenario 'CoreOwn' {
            $c = Read-CoreDump -LiteralPath $UserCore
            @{ Pid = $c.Pid; Signal = "$($c.Signal)"; Functions = @($c.CrashingThread.Frames.Symbol) }
        }
    }
    'Bpf' {
        Invoke-Scenario 'WatchExecOwn' {
            # The watch in a thread of this pwsh; this thread runs the marker (its own child, reaped) until the watch has its two.
            $job = Start-ThreadJob -ArgumentList $Module, (Split-Path -Leaf $Marker) -ScriptBlock {
                param($module, $name)
                Import-Module $module
                Watch-Exec -Name $name -Count 2 -Timeout 20 -ErrorAction Stop
            }
            $deadline = [DateTime]::UtcNow.AddSeconds(20)
            while ($job.State -in 'NotStarted', 'Running' -and [DateTime]::UtcNow -lt $deadline) { & $Marker; Start-Sleep -Milliseconds 100 }
            $events = @(Receive-Job $job -Wait -AutoRemoveJob)
            @{ Count = $events.Count; Uids = @($events.UserId | Select-Object -Unique); Files = @($events.Filename | Select-Object -Unique) }
        }
        Invoke-Scenario 'TraceBpfOwn' {
            $events = Start-SyscallTrace -FilePath /bin/true -Engine Bpf -Syscall execve
            @{ Engines = @($events.Engine | Select-Object -Unique); Execve = @($events | Where-Object Name -eq 'execve').Count }
        }
        # System-wide tracepoints: with CAP_PERFMON the kernel shows every process's calls, root's too.
        Invoke-Scenario 'TraceBpfOther' {
            $events = Start-SyscallTrace -Engine Bpf -Id $RootLoopPid -Syscall getppid -Timeout 1
            @{ Calls = @($events | Where-Object { $_.EventType -eq 'Syscall' -and $_.Name -eq 'getppid' }).Count; Pids = @($events.Pid | Select-Object -Unique) }
        }
        Invoke-Scenario 'ContainerOfOther' { Watch-Exec -ContainerOf $RootSymbolsPid -Timeout 1 }
    }
    'BpfWithoutDac' {
        Invoke-Scenario 'WatchExec' { Watch-Exec -Timeout 1 }
        Invoke-Scenario 'TraceBpf' { Start-SyscallTrace -FilePath /bin/true -Engine Bpf }
        Invoke-Scenario 'TraceAuto' {
            $all = Start-SyscallTrace -FilePath /bin/true -Syscall execve -Verbose 4>&1
            @{ Verbose = @($all | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
               Engines = @($all | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] } | ForEach-Object Engine | Select-Object -Unique) }
        }
    }
    'RootWithoutPtrace' {
        # uid 0 without CAP_SYS_PTRACE: another user's processes are refused as they are to that user's peers.
        Invoke-Scenario 'ProcSymbolUser' { Get-ProcSymbol -Id $UserSymbolsPid -Name pslt_function }
        Invoke-Scenario 'StackUser' { Get-ProcessStack -Id $UserSymbolsPid }
        Invoke-Scenario 'TraceUser' { Start-SyscallTrace -Id $UserLoopPid -Engine Ptrace -Timeout 1 }
        Invoke-Scenario 'SnapshotUser' { Save-ProcessSnapshot -Id $UserSymbolsPid -Path (Join-Path $Out 'root-nocap.core') }
    }
}
$records | ConvertTo-Json -Depth 5 -EnumsAsStrings | Set-Content -LiteralPath $Result
