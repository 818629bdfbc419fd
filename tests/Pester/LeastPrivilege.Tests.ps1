#Requires -Version 7.4
# Least privilege (issue 17): the module in this run's pwsh, started again as an unprivileged user
# (pslt-lp, created here when absent, removed again if so) with no capability, with CAP_BPF +
# CAP_PERFMON (+ CAP_DAC_READ_SEARCH), and as root without CAP_SYS_PTRACE (setpriv). Each child
# pwsh runs LeastPrivilegeScenarios.ps1, which records one JSON object per cmdlet call; the Its
# check those as root against /proc, readelf, eu-stack and strace, and look for anything left
# behind. This kernel has no Yama (/proc/sys/kernel/yama is absent), so the classic ptrace rules
# hold: same uid and no extra capabilities in the target. Needs root, useradd, setpriv, cc.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $script:User = 'pslt-lp'
    & id -u $User *> $null
    $script:CreatedUser = $LASTEXITCODE -ne 0
    if ($CreatedUser) {
        & useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $User
        if ($LASTEXITCODE -ne 0) { throw "useradd $User failed" }
    }
    $script:Uid = [int](& id -u $User)
    $script:Gid = [int](& id -g $User)
    $script:AsUser = @("--reuid=$Uid", "--regid=$Gid", '--clear-groups')
    $script:Stage = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-leastpriv-$PID"
    New-Item -ItemType Directory -Path $Stage -Force | Out-Null
    & chmod 0755 $Stage

    function Test-UserCanRead([string] $Path) { & setpriv @AsUser -- test -r $Path; $LASTEXITCODE -eq 0 }

    # The module, readable by all: the checkout may sit where the user cannot reach (under /root in CI).
    $module = Join-Path $Stage 'PSLinuxTrace'
    Copy-Item -Recurse -LiteralPath (Split-Path (Resolve-Path $ModulePath)) -Destination $module
    & chmod -R a+rX $module
    Copy-Item (Join-Path $PSScriptRoot 'LeastPrivilegeScenarios.ps1') $Stage
    # This pwsh: `dotnet tool restore` keeps it in ~/.nuget/packages, and /root is mode 0700. Its files are
    # world-readable, so a hard-linked copy of $PSHOME (new directories, the same inodes) is enough.
    $pwsh = Get-PwshCommandLine
    $pwshHome = $PSHOME
    if (-not (Test-UserCanRead (Join-Path $PSHOME 'pwsh.dll'))) {
        $pwshHome = Join-Path $Stage 'pwsh'
        & cp -al $PSHOME $pwshHome 2>$null
        if ($LASTEXITCODE -ne 0) { Remove-Item -Recurse -Force $pwshHome -ErrorAction Ignore; & cp -a $PSHOME $pwshHome }
    }
    $script:PwshLine = if ($pwsh.Count -eq 2) { @($pwsh[0], (Join-Path $pwshHome 'pwsh.dll')) } else { @(Join-Path $pwshHome (Split-Path -Leaf $pwsh[0])) }
    foreach ($f in $PwshLine) { if (-not (Test-UserCanRead $f)) { throw "$User cannot read $f" } }

    foreach ($name in 'symbols', 'syscalls', 'crash') {
        & cc -g -O0 -o (Join-Path $Stage $name) (Join-Path $FixtureSource "$name.c") -lpthread
        if ($LASTEXITCODE -ne 0) { throw "cc failed for $name" }
    }
    $script:Marker = Join-Path $Stage 'pslt-lp-marker'
    Copy-Item /bin/true $Marker
    $script:Out = Join-Path $Stage 'out'       # the user's: where its snapshots and cores go
    $script:UserHome = Join-Path $Stage 'home'
    # One output folder per credential set: the sets run side by side, and each checks that its refusals add no file to its own.
    New-Item -ItemType Directory -Path $Out, $UserHome, (Join-Path $UserHome 'tmp') | Out-Null
    foreach ($mode in 'NoCaps', 'Bpf', 'BpfWithoutDac', 'RootWithoutPtrace') { New-Item -ItemType Directory -Path (Join-Path $Out $mode) | Out-Null }
    & chown -R "${Uid}:$Gid" $Out $UserHome
    & chmod 0700 $Out

    # A fixture that prints key=value lines, then "ready", then waits on stdin; -AsUser starts it as the
    # test user (setpriv execs it: same pid), a child of this root pwsh, so not a descendant of the user's.
    $script:Fixtures = [System.Collections.Generic.List[object]]::new()
    function Start-Fixture([string[]] $Command, [switch] $AsUser) {
        $argv = @(if ($AsUser) { @('setpriv') + $script:AsUser + '--inh-caps=-all' + '--bounding-set=-all' + '--' + $Command } else { $Command })
        $psi = [System.Diagnostics.ProcessStartInfo]::new($argv[0])
        foreach ($a in ($argv | Select-Object -Skip 1)) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardInput = $true
        $psi.WorkingDirectory = $Stage
        $p = [System.Diagnostics.Process]::Start($psi)
        $values = @{}
        while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') {
            if ($null -eq $line) { throw "$Command exited before it was ready" }
            $k, $v = $line -split '=', 2
            $values[$k] = $v
        }
        $Fixtures.Add($p)
        [pscustomobject]@{ Process = $p; Id = $p.Id; Values = $values }
    }
    $script:RootSymbols = Start-Fixture (Join-Path $Stage 'symbols')
    $script:RootLoop = Start-Fixture (Join-Path $Stage 'syscalls'), 'wait'
    $script:UserSymbols = Start-Fixture (Join-Path $Stage 'symbols') -AsUser
    $script:UserLoop = Start-Fixture (Join-Path $Stage 'syscalls'), 'wait' -AsUser

    # A core the user owns, written by the kernel (core_pattern "core" in the cwd), and root's 0600 copy of it.
    $crash = & setpriv @AsUser -- /bin/sh -c "ulimit -c unlimited; cd '$Out' && exec '$Stage/crash' segv 2>/dev/null"
    $script:CrashPid = [int](($crash | Where-Object { $_ -like 'pid=*' }) -replace 'pid=', '')
    $script:UserCore = @(Get-ChildItem -LiteralPath $Out -Filter 'core*').FullName | Select-Object -First 1
    if (-not $UserCore) {   # core_pattern pipes to a collector here: gcore (gdb) as the user writes one instead
        & setpriv @AsUser -- gcore -o (Join-Path $Out 'core') $UserSymbols.Id *> $null
        $script:UserCore = @(Get-ChildItem -LiteralPath $Out -Filter 'core*').FullName | Select-Object -First 1
        $script:CrashPid = $UserSymbols.Id
    }
    if (-not $UserCore) { throw "No core of $User's in $Out" }
    $script:RootCore = Join-Path $Stage 'root.core'
    Copy-Item $UserCore $RootCore
    & chmod 0600 $RootCore

    $script:UserTempBefore = @(& find /tmp /dev/shm -maxdepth 1 -user $User 2>$null)
    # One child pwsh per credential set; sets that touch different targets run side by side.
    function Start-Scenarios([string] $Mode, [string[]] $Credentials) {
        $result = Join-Path $UserHome "$Mode.json"
        $argv = $Credentials + '--' + 'env' + "HOME=$UserHome" + "TMPDIR=$UserHome/tmp" + $PwshLine + @('-NoProfile', '-NonInteractive',
            '-File', (Join-Path $Stage 'LeastPrivilegeScenarios.ps1'), '-Mode', $Mode, '-Module', (Join-Path $Stage 'PSLinuxTrace' 'PSLinuxTrace.psd1'),
            '-Result', $result, '-Out', (Join-Path $Out $Mode), '-RootSymbolsPid', $RootSymbols.Id, '-RootLoopPid', $RootLoop.Id, '-UserSymbolsPid', $UserSymbols.Id,
            '-UserLoopPid', $UserLoop.Id, '-RootCore', $RootCore, '-UserCore', $UserCore, '-Marker', $Marker)
        $psi = [System.Diagnostics.ProcessStartInfo]::new('setpriv')
        foreach ($a in $argv) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        [pscustomobject]@{ Mode = $Mode; Result = $result; Process = $p; Output = $p.StandardOutput.ReadToEndAsync(); Errors = $p.StandardError.ReadToEndAsync() }
    }
    function Receive-Scenarios($Run) {
        if (-not $Run.Process.WaitForExit(50000)) { $Run.Process.Kill(); throw "The $($Run.Mode) scenarios did not end within 50 s" }
        if (-not (Test-Path $Run.Result)) { throw "The $($Run.Mode) scenarios wrote no result: $($Run.Output.Result)$($Run.Errors.Result)" }
        $byName = @{}
        foreach ($r in (Get-Content -LiteralPath $Run.Result -Raw | ConvertFrom-Json)) { $byName[$r.Name] = $r }
        $byName
    }
    $noCapsArgs = @('--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all')
    $bpfCaps = '-all,+bpf,+perfmon,+dac_read_search'
    $bpfOnlyCaps = '-all,+bpf,+perfmon'
    # NoCaps and RootWithoutPtrace both work on the user's fixtures (one may attach while the other is refused): not together.
    $runs = @(
        Start-Scenarios NoCaps ($AsUser + $noCapsArgs)
        Start-Scenarios Bpf ($AsUser + "--inh-caps=$bpfCaps" + "--ambient-caps=$bpfCaps" + "--bounding-set=$bpfCaps")
        Start-Scenarios BpfWithoutDac ($AsUser + "--inh-caps=$bpfOnlyCaps" + "--ambient-caps=$bpfOnlyCaps" + "--bounding-set=$bpfOnlyCaps")
    )
    $script:NoCaps, $script:Bpf, $script:BpfWithoutDac = $runs | ForEach-Object { , (Receive-Scenarios $_) }
    $script:RootWithoutPtrace = Receive-Scenarios (Start-Scenarios RootWithoutPtrace @('--inh-caps=-sys_ptrace', '--bounding-set=-sys_ptrace'))

    # What a refused call must look like: the cmdlet's PermissionDenied id and category, the reason, and nothing left.
    function Assert-Denied($Record, [string] $Command, [string] $Capability, [string] $Reason) {
        $Record.Failed | Should -BeTrue -Because "$($Record.Name) must fail"
        $Record.Category | Should -BeExactly 'PermissionDenied'
        $Record.ErrorId | Should -BeExactly (Get-QualifiedId PermissionDenied $Command)
        if ($Capability) {
            $Record.MissingCapability | Should -BeExactly $Capability
            $Record.Message | Should -BeLike "*$Capability*"
        } else { $Record.MissingCapability | Should -BeNullOrEmpty }   # a rule no capability lifts
        $Record.Message | Should -BeLike "*$Reason*"
        @($Record.OutAdded) | Should -BeNullOrEmpty -Because 'no partial file may stay'
        Assert-NothingLeft $Record
    }
    function Assert-NothingLeft($Record) {
        $Record.BpfFds | Should -Be 0 -Because 'no BPF program, map, link or perf event may stay open'
        @($Record.Children) | Should -BeNullOrEmpty -Because 'no tracer process (nor launched program) may outlive the cmdlet'
    }
}

AfterAll {
    foreach ($p in $Fixtures) {
        try { $p.StandardInput.WriteLine('quit'); $p.StandardInput.Close() } catch { }
        if (-not $p.WaitForExit(5000)) { $p.Kill(); $p.WaitForExit() }
    }
    if ($Stage) { Remove-Item -Recurse -Force -LiteralPath $Stage -ErrorAction Ignore }
    if ($CreatedUser) { & userdel $User }
}

Describe 'Least privilege: an unprivileged user without any capability' {
    It 'runs as the test user with an empty effective set' {
        $NoCaps.Credentials.Data.CapEff | Should -BeExactly '0000000000000000'
        $NoCaps.Credentials.Data.Uid | Should -BeExactly "Uid: $Uid $Uid $Uid $Uid"
        Test-Path /proc/sys/kernel/yama | Should -BeFalse -Because 'these Its test the uid rule; with Yama, ptrace_scope adds its own'
    }

    It '<Command> of root''s process is PermissionDenied naming CAP_SYS_PTRACE and the uid rule' -ForEach @(
        @{ Scenario = 'ProcSymbolOther'; Command = 'Get-ProcSymbol' }
        @{ Scenario = 'StackOther'; Command = 'Get-ProcessStack' }
        @{ Scenario = 'TraceOther'; Command = 'Start-SyscallTrace' }
        @{ Scenario = 'SnapshotOther'; Command = 'Save-ProcessSnapshot' }
    ) {
        Assert-Denied $NoCaps[$Scenario] $Command 'CAP_SYS_PTRACE' "runs as uid 0 and this process as uid $Uid"
    }

    It 'leaves root''s targets running, untraced, and no snapshot file' {
        Assert-Untraced $RootSymbols.Id
        Assert-Untraced $RootLoop.Id
        $NoCaps.SnapshotOther.OutAdded | Should -BeNullOrEmpty
        Test-Path (Join-Path $Out 'NoCaps' 'other.core') | Should -BeFalse
    }

    It 'Read-CoreDump of root''s mode 0600 core is PermissionDenied naming the mode and CAP_DAC_READ_SEARCH' {
        Assert-Denied $NoCaps.CoreOther 'Read-CoreDump' 'CAP_DAC_READ_SEARCH' "mode 0600, which does not let uid $Uid read it"
        $NoCaps.CoreOther.ExceptionType | Should -BeExactly 'PSLinuxTrace.Engine.TargetPermissionDeniedException'
    }

    It 'Save-ProcessSnapshot <Label> to a directory it may not write is PermissionDenied naming the mode and CAP_DAC_OVERRIDE, with no file and no program left' -ForEach @(
        @{ Scenario = 'SnapshotUnwritable'; Label = '-Id'; File = '/etc/pslt-lp-own.core' }
        @{ Scenario = 'SnapshotLaunchUnwritable'; Label = '-FilePath'; File = '/etc/pslt-lp-launch.core' }
    ) {
        Assert-Denied $NoCaps[$Scenario] 'Save-ProcessSnapshot' 'CAP_DAC_OVERRIDE' "its directory /etc has mode 0755, which does not let uid $Uid create files there"
        Test-Path $File | Should -BeFalse
        Assert-Untraced $UserSymbols.Id
    }

    It 'Start-SyscallTrace of its own pwsh is PermissionDenied by the module''s rule (no capability would help); Get-ProcessStack of it works' {
        Assert-Denied $NoCaps.TraceSelf 'Start-SyscallTrace' $null 'a process cannot trace itself'
        $NoCaps.StackSelf.Failed | Should -BeFalse -Because $NoCaps.StackSelf.Message
        $NoCaps.StackSelf.Data.Threads | Should -BeGreaterThan 1
    }

    It '<Label> is PermissionDenied naming CAP_BPF and CAP_PERFMON' -ForEach @(
        @{ Scenario = 'TraceBpf'; Command = 'Start-SyscallTrace'; Label = 'Start-SyscallTrace -Engine Bpf' }
        @{ Scenario = 'WatchExec'; Command = 'Watch-Exec'; Label = 'Watch-Exec' }
    ) {
        Assert-Denied $NoCaps[$Scenario] $Command 'CAP_BPF, CAP_PERFMON' 'which this process does not have'
    }

    It 'Get-ProcSymbol finds a symbol in its own process, at the address the process printed' {
        $NoCaps.ProcSymbolOwn.Failed | Should -BeFalse -Because $NoCaps.ProcSymbolOwn.Message
        $NoCaps.ProcSymbolOwn.Data.Address | Should -Be ([Convert]::ToUInt64($UserSymbols.Values['pslt_function'].Substring(2), 16))
    }

    It 'Get-ProcessStack reads its own process''s stack, as eu-stack does' {
        $NoCaps.StackOwn.Failed | Should -BeFalse -Because $NoCaps.StackOwn.Message
        $reference = & eu-stack -p $UserSymbols.Id 2>$null | Where-Object { $_ -match '^#\d+\s+0x[0-9a-f]+\s+(\S+)' } | ForEach-Object { $Matches[1] }
        $reference | Should -Contain 'main'
        $NoCaps.StackOwn.Data.Functions | Should -Contain 'main'
        @($NoCaps.StackOwn.Data.Functions | Where-Object { $_ -in $reference }) | Should -Not -BeNullOrEmpty
        Assert-Untraced $UserSymbols.Id
    }

    It 'Start-SyscallTrace -Engine Ptrace traces a program it launches, every call strace sees' {
        $NoCaps.TraceLaunch.Failed | Should -BeFalse -Because $NoCaps.TraceLaunch.Message
        $NoCaps.TraceLaunch.Data.Engines | Should -Be 'Ptrace'
        $strace = Join-Path $UserHome 'true.strace'
        & setpriv @AsUser --inh-caps=-all --bounding-set=-all -- strace -qq -o $strace /bin/true
        $reference = Get-Content $strace | Where-Object { $_ -match '^([a-z_0-9]+)\(' } | ForEach-Object { $Matches[1] } | Select-Object -Unique
        $reference | Should -Contain 'execve'
        @($reference | Where-Object { $_ -notin $NoCaps.TraceLaunch.Data.Names }) | Should -BeNullOrEmpty
    }

    It 'Start-SyscallTrace -Engine Ptrace attaches to its own process that is not its descendant (classic rules), and detaches' {
        $NoCaps.TraceOwn.Failed | Should -BeFalse -Because $NoCaps.TraceOwn.Message
        $NoCaps.TraceOwn.Data.Calls | Should -BeGreaterThan 0
        $NoCaps.TraceOwn.Data.Pids | Should -Be $UserLoop.Id
        Get-ProcStatusField $UserLoop.Id PPid | Should -Be "$PID" -Because 'the target is root''s child, not the user pwsh''s'
        Assert-Untraced $UserLoop.Id
    }

    It 'Start-SyscallTrace -Engine Auto falls back to ptrace, saying why in a Verbose line' {
        $NoCaps.TraceAuto.Failed | Should -BeFalse -Because $NoCaps.TraceAuto.Message
        $NoCaps.TraceAuto.Data.Verbose | Where-Object { $_ -like 'Engine Ptrace: Auto: this process lacks CAP_BPF, CAP_PERFMON*' } | Should -Not -BeNullOrEmpty
        $NoCaps.TraceAuto.Data.Engines | Should -Be 'Ptrace'
        $NoCaps.TraceAuto.Data.Execve | Should -BeGreaterThan 0
    }

    It 'Save-ProcessSnapshot writes a core of its own process that readelf reads' {
        $NoCaps.SnapshotOwn.Failed | Should -BeFalse -Because $NoCaps.SnapshotOwn.Message
        $NoCaps.SnapshotOwn.Data.Pid | Should -Be $UserSymbols.Id
        $path = Join-Path $Out 'NoCaps' 'own.core'
        (& readelf -h $path | Where-Object { $_ -match '^\s*Type:' }) | Should -BeLike '*CORE*'
        (& readelf -n $path | Where-Object { $_ -match 'NT_PRSTATUS' }) | Should -Not -BeNullOrEmpty
        (& stat -c %u $path) | Should -Be "$Uid"
        Assert-Untraced $UserSymbols.Id
    }

    It 'Save-ProcessSnapshot -Method WriteTracked (userfaultfd) and -FilePath work on its own processes' {
        foreach ($r in $NoCaps.SnapshotOwnWriteTracked, $NoCaps.SnapshotLaunchOwn) {
            $r.Failed | Should -BeFalse -Because $r.Message
            (& readelf -h $r.Data.Path | Where-Object { $_ -match '^\s*Type:' }) | Should -BeLike '*CORE*'
            Assert-NothingLeft $r
        }
        $NoCaps.SnapshotOwnWriteTracked.Data.Method | Should -BeExactly 'WriteTracked'
    }

    It 'Get-ProcSymbol without -Id finds its own process''s symbol and only counts the processes it may not read' {
        $NoCaps.ProcSymbolAll.Failed | Should -BeFalse -Because $NoCaps.ProcSymbolAll.Message
        $NoCaps.ProcSymbolAll.Data.Pids | Should -Contain $UserSymbols.Id
        $NoCaps.ProcSymbolAll.Data.Pids | Should -Not -Contain $RootSymbols.Id
        $NoCaps.ProcSymbolAll.Data.Warnings | Should -BeLike 'Skipped * process(es) this session may not read*'
    }

    It 'Read-CoreDump reads a core it owns: its pid, signal and crashing frame' {
        $NoCaps.CoreOwn.Failed | Should -BeFalse -Because $NoCaps.CoreOwn.Message
        $NoCaps.CoreOwn.Data.Pid | Should -Be $CrashPid
        $NoCaps.CoreOwn.Data.Signal | Should -BeExactly 'SIGSEGV'
        $NoCaps.CoreOwn.Data.Functions | Should -Contain 'pslt_crash_here'
    }
}

Describe 'Least privilege: the user with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH' {
    It 'Watch-Exec sees the user''s own execs' {
        $Bpf.WatchExecOwn.Failed | Should -BeFalse -Because $Bpf.WatchExecOwn.Message
        $Bpf.WatchExecOwn.Data.Count | Should -Be 2
        $Bpf.WatchExecOwn.Data.Uids | Should -Be $Uid
        $Bpf.WatchExecOwn.Data.Files | Should -Be $Marker
        $Bpf.WatchExecOwn.BpfFds | Should -Be $Bpf.Credentials.Data.BpfFds
    }

    It 'Start-SyscallTrace -Engine Bpf traces a program it launches' {
        $Bpf.TraceBpfOwn.Failed | Should -BeFalse -Because $Bpf.TraceBpfOwn.Message
        $Bpf.TraceBpfOwn.Data.Engines | Should -Be 'Bpf'
        $Bpf.TraceBpfOwn.Data.Execve | Should -Be 1
        $Bpf.TraceBpfOwn.BpfFds | Should -Be 0
    }

    It 'Start-SyscallTrace -Engine Bpf -Id sees root''s process too: CAP_PERFMON is system-wide, the uid rule is ptrace''s' {
        $Bpf.TraceBpfOther.Failed | Should -BeFalse -Because $Bpf.TraceBpfOther.Message
        $Bpf.TraceBpfOther.Data.Calls | Should -BeGreaterThan 0
        $Bpf.TraceBpfOther.Data.Pids | Should -Be $RootLoop.Id
        Assert-Untraced $RootLoop.Id
    }

    It 'Watch-Exec -ContainerOf root''s process is PermissionDenied naming CAP_SYS_PTRACE (its /proc/PID/ns/pid)' {
        Assert-Denied $Bpf.ContainerOfOther 'Watch-Exec' 'CAP_SYS_PTRACE' "/proc/$($RootSymbols.Id)/ns/pid"
    }
}

Describe 'Least privilege: the user with CAP_BPF and CAP_PERFMON but not CAP_DAC_READ_SEARCH' {
    It '<Command> is PermissionDenied naming CAP_DAC_READ_SEARCH for tracefs (mode 0700)' -ForEach @(
        @{ Scenario = 'WatchExec'; Command = 'Watch-Exec' }
        @{ Scenario = 'TraceBpf'; Command = 'Start-SyscallTrace' }
    ) {
        (& stat -c %a /sys/kernel/tracing) | Should -Be '700' -Because 'tracefs is mounted with the kernel''s default mode (TRACEFS_DEFAULT_MODE)'
        Assert-Denied $BpfWithoutDac[$Scenario] $Command 'CAP_DAC_READ_SEARCH' 'tracefs is mounted there, but only its owner (root) may read it'
    }

    It 'Start-SyscallTrace -Engine Auto falls back to ptrace, saying why in a Verbose line' {
        $BpfWithoutDac.TraceAuto.Failed | Should -BeFalse -Because $BpfWithoutDac.TraceAuto.Message
        $BpfWithoutDac.TraceAuto.Data.Verbose | Where-Object { $_ -like 'Engine Ptrace: Auto: the eBPF engine could not start (*CAP_DAC_READ_SEARCH*' } | Should -Not -BeNullOrEmpty
        $BpfWithoutDac.TraceAuto.Data.Engines | Should -Be 'Ptrace'
        $BpfWithoutDac.TraceAuto.BpfFds | Should -Be 0
    }
}

Describe 'Least privilege: root without CAP_SYS_PTRACE' {
    It '<Command> of another user''s process is PermissionDenied naming CAP_SYS_PTRACE, without telling root to become root' -ForEach @(
        @{ Scenario = 'ProcSymbolUser'; Command = 'Get-ProcSymbol' }
        @{ Scenario = 'StackUser'; Command = 'Get-ProcessStack' }
        @{ Scenario = 'TraceUser'; Command = 'Start-SyscallTrace' }
        @{ Scenario = 'SnapshotUser'; Command = 'Save-ProcessSnapshot' }
    ) {
        $RootWithoutPtrace.Credentials.Data.Uid | Should -BeExactly 'Uid: 0 0 0 0'
        Assert-Denied $RootWithoutPtrace[$Scenario] $Command 'CAP_SYS_PTRACE' "runs as uid $Uid and this process as uid 0"
        $RootWithoutPtrace[$Scenario].RecommendedAction | Should -BeLike '*lost CAP_SYS_PTRACE*'
    }

    It 'leaves the user''s targets running and untraced' {
        Assert-Untraced $UserSymbols.Id
        Assert-Untraced $UserLoop.Id
        Test-Path (Join-Path $Out 'RootWithoutPtrace' 'root-nocap.core') | Should -BeFalse
    }
}

Describe 'Least privilege: nothing left behind' {
    It 'no call, failed or not, left a BPF fd or a child process in its pwsh' {
        foreach ($set in $NoCaps, $Bpf, $BpfWithoutDac, $RootWithoutPtrace) {
            foreach ($r in $set.Values | Where-Object Name -ne 'Credentials') { Assert-NothingLeft $r }
        }
    }

    It 'no process of the user but its fixtures, and no file of its in /tmp or /dev/shm' {
        $mine = @($UserSymbols.Id, $UserLoop.Id)
        @(& pgrep -u $User | ForEach-Object { [int]$_ } | Where-Object { $_ -notin $mine }) | Should -BeNullOrEmpty
        @(& find /tmp /dev/shm -maxdepth 1 -user $User 2>$null | Where-Object { $_ -notin $UserTempBefore }) | Should -BeNullOrEmpty
    }
}
