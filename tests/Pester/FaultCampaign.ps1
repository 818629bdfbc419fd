# The fault campaign (issue 17), shared by tests/Pester/Faults.Tests.ps1 (CI counts, seconds) and
# bench/faults/run.sh (the issue's counts). Each Invoke-*Fault injects one fault Count times, verifies the
# target after each (New-FaultResult's Failures) and, at the end, what the session holds (Leaks).
# Dot-source it after TestHelpers.ps1; call Initialize-FaultCampaign once.
. (Join-Path $PSScriptRoot 'TestHelpers.ps1')
. (Join-Path $PSScriptRoot 'FaultChecks.ps1')

function Initialize-FaultCampaign {
    Import-Module $ModulePath -Force -Global
    $script:FaultWork = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-faults-$PID"
    New-Item -ItemType Directory -Path $FaultWork -Force | Out-Null
    $script:Checksum = Join-Path $FaultWork 'checksum'
    $script:ExecStorm = Join-Path $FaultWork 'exec_storm'
    $script:Syscalls = Join-Path $FaultWork 'syscalls'
    & cc -g -O0 -pthread -o $Checksum (Join-Path $FixtureSource 'checksum.c')
    & cc -O2 -static -o $ExecStorm (Join-Path $FixtureSource 'exec_storm.c')
    & cc -O0 -g -pthread -o $Syscalls (Join-Path $FixtureSource 'syscalls.c')
    if ($LASTEXITCODE -ne 0) { throw 'cc failed for a fault fixture' }
}

function Remove-FaultCampaign { Remove-Item -Recurse -Force $FaultWork -ErrorAction SilentlyContinue }

# The checksumming fixture as a child of this pwsh (Process.Start, as a user's service would be), with
# Threads workers and, with -Churn, a thread that keeps forking children and starting threads.
function Start-Checksum([int] $Threads = 2, [switch] $Churn, [switch] $Service) {
    $psi = [System.Diagnostics.ProcessStartInfo]::new($Checksum)
    $psi.ArgumentList.Add("$Threads")
    if ($Churn) { $psi.ArgumentList.Add('churn') } elseif ($Service) { $psi.ArgumentList.Add('service') }
    $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
    $p = [System.Diagnostics.Process]::Start($psi)
    $values = @{}
    while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') { $k, $v = $line -split '=', 2; $values[$k] = $v }
    [pscustomobject]@{ Process = $p; Id = [int]$values.pid; Rounds = [long]0 }
}

# rounds= and errors= as the fixture counts them; $null once it is gone.
function Get-ChecksumStatus($Target) {
    try {
        $Target.Process.StandardInput.WriteLine('status'); $Target.Process.StandardInput.Flush()
        if ($Target.Process.StandardOutput.ReadLine() -notmatch 'rounds=(\d+) errors=(\d+)') { return $null }
        [pscustomobject]@{ Rounds = [long]$Matches[1]; Errors = [long]$Matches[2] }
    } catch [System.IO.IOException] { $null }
}

function Stop-Checksum($Target) {
    & kill -KILL $Target.Id 2>$null
    $Target.Process.WaitForExit(5000) | Out-Null
    $Target.Process.Dispose()
}

# Runs `sleep DELAY; kill -KILL PID` in the background: a kill at a random point of what comes next.
function Start-Killer([int] $Id, [double] $MaxSeconds) {
    $delay = [math]::Round((Get-Random -Minimum 0.0 -Maximum $MaxSeconds), 3)
    Start-Process -FilePath /bin/sh -ArgumentList '-c', "`"sleep $delay; kill -KILL $Id`"" -PassThru
}

# One result line of the campaign: count, survived, failures (per injection), leaks (at the end).
function New-FaultResult([string] $Fault, [int] $Count, [int] $Survived, $Failures, $Leaks, [string] $Detail = '') {
    [pscustomobject]@{ Fault = $Fault; Count = $Count; Survived = $Survived; Failures = @($Failures | Where-Object { $_ }); Leaks = @($Leaks | Where-Object { $_ }); Detail = $Detail }
}

function Format-FaultResult([Parameter(ValueFromPipeline)] $Result) {
    process {
        "fault=$($Result.Fault) count=$($Result.Count) survived=$($Result.Survived) failures=$($Result.Failures.Count) leaks=$($Result.Leaks.Count)$(if ($Result.Detail) { " $($Result.Detail)" })"
        foreach ($f in $Result.Failures | Select-Object -First 10) { "  failure: $f" }
        foreach ($l in $Result.Leaks) { "  leak: $l" }
    }
}

. (Join-Path $PSScriptRoot 'FaultInjections.ps1')
. (Join-Path $PSScriptRoot 'FaultLoads.ps1')
. (Join-Path $PSScriptRoot 'FaultStorms.ps1')
