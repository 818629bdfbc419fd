#Requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests, documents and packages the PSLinuxTrace module (for maintainers).
.DESCRIPTION
    `dotnet build` alone assembles the importable module in out/PSLinuxTrace (manifest, assemblies,
    format files, MAML help built from docs/en-US). This script wraps the rest:
      Build    dotnet build (the module folder)
      Test     dotnet test (xUnit: the engine against the real kernel) and, when Pester 5 is
               installed, Invoke-Pester on tests/Pester (the module from a user's chair)
      Help     when platyPS is installed, refreshes docs/en-US from the built cmdlets
               (Update-MarkdownHelp) so new parameters get a stub to fill in
      Package  a versioned zip of out/PSLinuxTrace in out/, ready for Publish-PSResource
.EXAMPLE
    ./build.ps1                 # Build and Test
.EXAMPLE
    ./build.ps1 -Task Build, Package -Configuration Release
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Help', 'Package')]
    [string[]] $Task = @('Build', 'Test'),
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Debug'
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$moduleDir = Join-Path $root 'out' 'PSLinuxTrace'

function Invoke-Native([string] $File, [string[]] $Arguments) {
    Write-Verbose "$File $($Arguments -join ' ')"
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

if ($Task -contains 'Build' -or -not (Test-Path $moduleDir)) {
    Invoke-Native dotnet @('build', (Join-Path $root 'PSLinuxTrace.sln'), '-c', $Configuration)
}

if ($Task -contains 'Test') {
    Invoke-Native dotnet @('test', (Join-Path $root 'PSLinuxTrace.sln'), '-c', $Configuration)
    if (Get-Module -ListAvailable Pester | Where-Object Version -GE ([version]'5.0')) {
        # Pester runs in a child pwsh so the module it imports is not held by this session.
        Invoke-Native pwsh @('-NoProfile', '-Command', "`$c = New-PesterConfiguration; `$c.Run.Path = '$root/tests/Pester'; `$c.Run.Exit = `$true; `$c.Output.Verbosity = 'Detailed'; Invoke-Pester -Configuration `$c")
    } else {
        Write-Warning 'Pester 5 is not installed: skipped tests/Pester (Install-Module Pester -MinimumVersion 5.0).'
    }
}

if ($Task -contains 'Help') {
    if (Get-Module -ListAvailable platyPS) {
        Invoke-Native pwsh @('-NoProfile', '-Command', "Import-Module '$moduleDir/PSLinuxTrace.psd1'; Import-Module platyPS; Update-MarkdownHelp -Path '$root/docs/en-US' -AlphabeticParamsOrder:`$false | Out-Null")
        Write-Host 'docs/en-US refreshed; `dotnet build` rebuilds the MAML from it.'
    } else {
        Write-Warning 'platyPS is not installed: the MAML in out/PSLinuxTrace/en-US was built from docs/en-US by dotnet build; nothing to refresh.'
    }
}

if ($Task -contains 'Package') {
    $version = (Import-PowerShellDataFile (Join-Path $root 'PSLinuxTrace.psd1')).ModuleVersion
    $zip = Join-Path $root 'out' "PSLinuxTrace-$version.zip"
    Compress-Archive -Path $moduleDir -DestinationPath $zip -Force
    Write-Host "Packaged $zip (Publish-PSResource -Path '$moduleDir' -Repository <repo> publishes the folder)."
}
