# Shared by the Pester files: dot-source it in BeforeAll (`. (Join-Path $PSScriptRoot 'TestHelpers.ps1')`).
$script:ModulePath = Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1'
$script:FixtureSource = Join-Path $PSScriptRoot '..' 'Fixtures'

# Start-Process on Unix joins -ArgumentList with spaces and splits the result again, double quotes
# grouping, so a shell command must travel as one double-quoted argument (single quotes inside it
# are the shell's). Returns the shell's Process.
function Start-Shell([string] $Command) {
    if ($Command.Contains('"')) { throw "Start-Shell: use single quotes inside the command: $Command" }
    Start-Process -FilePath /bin/sh -ArgumentList '-c', "`"$Command`"" -PassThru
}

# Polls until the script block returns something truthy (returned), or throws after the timeout.
function Wait-Until([scriptblock] $Condition, [double] $TimeoutSeconds = 10, [string] $What = 'condition') {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        $value = & $Condition
        if ($value) { return $value }
        if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after $TimeoutSeconds s waiting for $What" }
        Start-Sleep -Milliseconds 20
    }
}

# The direct children of a process (from /proc/PID/task/PID/children), as ints.
function Get-ChildId([int] $Id) {
    $text = Get-Content "/proc/$Id/task/$Id/children" -Raw -ErrorAction Ignore
    @(if ($text) { $text -split ' ' | Where-Object { $_ } | ForEach-Object { [int]$_ } })
}

# A field of /proc/PID/status ('TracerPid', 'State'...), as the kernel writes it.
function Get-ProcStatusField([int] $Id, [string] $Name) {
    $line = Get-Content "/proc/$Id/status" -ErrorAction Stop | Where-Object { $_ -like "${Name}:*" } | Select-Object -First 1
    ($line -split ':\s*', 2)[1]
}

# What a user checks after a trace: the process runs (not in tracing stop or stopped) and nobody traces it.
function Assert-Untraced([int] $Id) {
    Get-ProcStatusField $Id TracerPid | Should -Be '0'
    (Get-ProcStatusField $Id State).Substring(0, 1) | Should -Not -BeIn @('t', 'T')
}

# BPF objects (programs, maps, links) and perf events this pwsh holds: the fds that point at them.
# Counted in our own process only, since other work on the machine loads BPF programs meanwhile.
function Get-BpfFdCount {
    @(Get-ChildItem "/proc/$PID/fd" -ErrorAction Ignore | Where-Object { $_.LinkTarget -like 'anon_inode:bpf*' -or $_.LinkTarget -eq 'anon_inode:[perf_event]' }).Count
}

# An error record's id as scripts match it: "Id,PSLinuxTrace.Commands.XCommand", the type name once.
function Get-QualifiedId([string] $Id, [string] $Command) {
    "$Id,PSLinuxTrace.Commands.$($Command -replace '-', '')Command"
}

# The command line that starts this pwsh again: `dotnet <PSHOME>/pwsh.dll` for the tool manifest's
# pwsh (`dotnet pwsh`), else the pwsh executable itself.
function Get-PwshCommandLine {
    $exe = [Environment]::ProcessPath
    if ((Split-Path -Leaf $exe) -eq 'dotnet') { @($exe, (Join-Path $PSHOME 'pwsh.dll')) } else { @($exe) }
}
