# Shared by the Remoting*.Tests.ps1 files: dot-source it (after TestHelpers.ps1) in BeforeAll, call
# Initialize-RemotingTest, and Clear-RemotingTest in AfterAll.
. (Join-Path $PSScriptRoot 'TestSshHosts.ps1')

# Builds the fixtures, makes the crash cores, starts three sshd hosts and opens a session to each ($Fleet).
function Initialize-RemotingTest([string] $Name) {
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-remoting-$Name-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    # Two builds of one library (same file name, other contents, so other build-ids) and a program that loads one.
    $script:LibV1 = Join-Path $Work 'v1' 'libpslt_fleet.so'
    $script:LibV2 = Join-Path $Work 'v2' 'libpslt_fleet.so'
    foreach ($lib in @(@{ Path = $LibV1; Value = '0x1111111111111111ULL' }, @{ Path = $LibV2; Value = '0x2222222222222222ULL' })) {
        New-Item -ItemType Directory -Path (Split-Path $lib.Path) -Force | Out-Null
        Invoke-Cc -shared -fPIC "-DPSLT_LIB_VALUE=$($lib.Value)" -o $lib.Path (Join-Path $FixtureSource 'symlib.c')
    }
    $script:LibMain = Join-Path $Work 'symlib_main'
    Invoke-Cc -o $LibMain (Join-Path $FixtureSource 'symlib_main.c') -ldl
    $script:CrashExe = Join-Path $Work 'crash'
    Invoke-Cc -g -O0 -fno-omit-frame-pointer -pthread -o $CrashExe (Join-Path $FixtureSource 'crash.c')

    # Kernel cores land in the crash's working directory as "core*"; a pipe (systemd-coredump, apport) is put back after.
    $script:SavedCorePattern = (Get-Content /proc/sys/kernel/core_pattern -Raw).Trim()
    if ($SavedCorePattern -ne 'core') { Set-Content -Path /proc/sys/kernel/core_pattern -Value 'core' -NoNewline }
    # Each host's crash folder (its /var/crash): two hosts crash in the program, the third aborts.
    $script:CrashDir = @{}
    foreach ($i in 1..3) {
        $dir = Join-Path $Work "pslt-host$i" 'crash'
        New-Item -ItemType Directory -Path $dir -Force | Out-Null
        $mode = if ($i -eq 3) { 'abort 2' } else { 'segv 0' }
        & sh -c "cd '$dir' && ulimit -c unlimited && exec '$CrashExe' $mode" > $null 2>&1
        $script:CrashDir["pslt-host$i"] = $dir
    }
    $script:AbortCore = @(Get-ChildItem (Join-Path $CrashDir['pslt-host3'] 'core*'))[0].FullName

    $moduleRoot = Split-Path (Split-Path (Resolve-Path $ModulePath).Path)
    Start-TestSshHost -Count 3 -ModuleRoot $moduleRoot | Out-Null
    $script:Fleet = @(New-TestSshFleet)
    $script:FleetPid = @{}
    Invoke-Command -Session $Fleet { $PID } | ForEach-Object { $FleetPid[$_.PSComputerName] = [int]$_ }
    Set-FleetVariable $Fleet CrashDir $CrashDir
}

function Clear-RemotingTest {
    Stop-TestSshHost
    if ($script:SavedCorePattern -and $script:SavedCorePattern -ne 'core') { Set-Content -Path /proc/sys/kernel/core_pattern -Value $script:SavedCorePattern -NoNewline }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

function Invoke-Cc {
    & cc @args
    if ($LASTEXITCODE -ne 0) { throw "cc $args failed" }
}

# The GNU build-id of an ELF file as readelf -n prints it.
function Get-ReadelfBuildId([string] $Path) {
    $line = & readelf -n $Path | Where-Object { $_ -match 'Build ID:' } | Select-Object -First 1
    ($line -split 'Build ID:\s*')[1].Trim()
}

# symlib_main with a library loaded, as a service a user started: its pid and the addresses dlsym gave it.
function Start-LibService([string] $Library) {
    $psi = [System.Diagnostics.ProcessStartInfo]::new($LibMain)
    $psi.ArgumentList.Add($Library)
    $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
    $p = [System.Diagnostics.Process]::Start($psi)
    $addresses = @{}
    while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') {
        if ($null -eq $line) { throw "symlib_main $Library exited before it was ready" }
        $k, $v = $line -split '=', 2
        $addresses[$k] = [Convert]::ToUInt64($v.Substring(2), 16)
    }
    [pscustomobject]@{ Process = $p; Id = $p.Id; Addresses = $addresses; Library = $Library }
}

function Stop-LibService($Service) {
    if (-not $Service) { return }
    $Service.Process.StandardInput.Close()
    if (-not $Service.Process.WaitForExit(5000)) { $Service.Process.Kill() }
}

# A shell that runs `/bin/true MARKER` every 0.1 s until stopped: execs to watch, from a known parent.
function Start-ExecLoop([string] $Marker) {
    $stop = Join-Path $Work "stop-$([guid]::NewGuid().ToString('N'))"
    Start-Shell "while [ ! -e '$stop' ]; do /bin/true $Marker; sleep 0.1; done" | Add-Member -NotePropertyName StopFile -NotePropertyValue $stop -PassThru
}

# A shell that forks a sleep every 0.1 s until stopped: a running process whose system calls keep coming.
function Start-BusyLoop {
    $stop = Join-Path $Work "stop-$([guid]::NewGuid().ToString('N'))"
    Start-Shell "while [ ! -e '$stop' ]; do sleep 0.1; done" | Add-Member -NotePropertyName StopFile -NotePropertyValue $stop -PassThru
}

function Stop-ExecLoop($Loop) {
    if (-not $Loop) { return }
    New-Item -ItemType File -Path $Loop.StopFile -Force | Out-Null
    if (-not $Loop.WaitForExit(5000)) { Stop-Process -Id $Loop.Id -Force -ErrorAction Ignore }
}

# The JSON of an object's properties, at every depth, without what remoting adds (PSComputerName...).
# It runs on both sides (as text there), so that one object's JSON there and here can be compared.
$script:FingerprintScript = {
    param($o)
    $o | Select-Object -Property * -ExcludeProperty PSComputerName, RunspaceId, PSShowComputerName, PSSourceJobInstanceId |
        ConvertTo-Json -Depth 12 -Compress -EnumsAsStrings
}.ToString()
function Get-Fingerprint($Object) { & ([scriptblock]::Create($FingerprintScript)) $Object }

# BPF objects and perf events a process holds (a host's pwsh: these hosts run on this machine).
function Get-BpfFdCountOf([int] $Id) {
    @(Get-ChildItem "/proc/$Id/fd" -ErrorAction Ignore | Where-Object { $_.LinkTarget -like 'anon_inode:bpf*' -or $_.LinkTarget -eq 'anon_inode:[perf_event]' }).Count
}

# What the hosts run besides their sshd and the fleet's own pwsh (tracers, launched programs, other
# sessions' pwsh): "pid comm".
function Get-HostLeftover {
    $keep = @($FleetPid.Values) + @($SshHosts.Process.Id)
    foreach ($id in Get-TestSshProcessId $SshRoot) {
        if ($id -in $keep) { continue }
        try { $comm = Get-Content "/proc/$id/comm" -ErrorAction Stop; $state = Get-ProcStatusField $id State } catch { continue }   # gone meanwhile
        if ($state -notlike 'Z*') { "$id $comm" }
    }
}
