#Requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests, documents and packages the PSLinuxTrace module (for maintainers).
.DESCRIPTION
    `dotnet build` alone assembles the importable module in out/PSLinuxTrace (manifest, assemblies,
    format files, MAML help built from docs/en-US). This script wraps the rest:
      Build    dotnet build (the module folder)
      Test     dotnet test (xUnit: the engine against the real kernel), then Pester 5.7.1 on
               tests/Pester (the module from a user's chair) in a child `dotnet pwsh`. Pester comes
               from NuGet (tests/Pester/PesterModule.csproj restores it into out/packages) and is
               imported by path; its results go to out/TestResults/Pester.xml (NUnit XML).
      Help     when platyPS is installed, refreshes docs/en-US from the built cmdlets
               (Update-MarkdownHelp) so new parameters get a stub to fill in
      Package  a versioned zip of out/PSLinuxTrace in out/, ready for Publish-PSResource
.EXAMPLE
    ./build.ps1                 # Build and Test
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test   # what the README and CI run
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
$PesterVersion = '5.7.1'   # also in tests/Pester/PesterModule.csproj

function Invoke-Native([string] $File, [string[]] $Arguments) {
    Write-Verbose "$File $($Arguments -join ' ')"
    & $File @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$File $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

if ($Task -contains 'Build' -or -not (Test-Path $moduleDir)) {
    Invoke-Native dotnet @('build', (Join-Path $root 'PSLinuxTrace.sln'), '-c', $Configuration)
}

if ($Task -contains 'Test') {
    Push-Location $root   # `dotnet pwsh` finds its tool manifest (.config/dotnet-tools.json) from here
    try {
        Invoke-Native dotnet @('tool', 'restore')
        Invoke-Native dotnet @('restore', (Join-Path $root 'tests' 'Pester' 'PesterModule.csproj'))
        $pester = Join-Path $root 'out' 'packages' 'pester' $PesterVersion 'tools' 'Pester.psd1'
        $results = Join-Path $root 'out' 'TestResults' 'Pester.xml'
        Remove-Item -LiteralPath $results -ErrorAction Ignore
        # Both suites run, whatever the first one gives; the exit code says whether either failed.
        & dotnet test (Join-Path $root 'PSLinuxTrace.sln') -c $Configuration
        $xunitFailed = $LASTEXITCODE -ne 0
        # Pester runs in a child pwsh, so the module it imports is not held by this session.
        $run = @"
Import-Module '$pester' -RequiredVersion $PesterVersion
`$c = New-PesterConfiguration
`$c.Run.Path = '$root/tests/Pester'
`$c.Run.Exit = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputFormat = 'NUnitXml'
`$c.TestResult.OutputPath = '$results'
Invoke-Pester -Configuration `$c
"@
        & dotnet pwsh -NoProfile -NonInteractive -Command $run
        $pesterFailed = $LASTEXITCODE -ne 0
        if ($xunitFailed -or $pesterFailed) {
            throw "Tests failed:$(if ($xunitFailed) { ' xUnit (dotnet test)' })$(if ($pesterFailed) { ' Pester (see out/TestResults/Pester.xml)' })"
        }
    } finally { Pop-Location }
}

if ($Task -contains 'Help') {
    if (Get-Module -ListAvailable platyPS) {
        Push-Location $root
        try { Invoke-Native dotnet @('pwsh', '-NoProfile', '-Command', "Import-Module '$moduleDir/PSLinuxTrace.psd1'; Import-Module platyPS; Update-MarkdownHelp -Path '$root/docs/en-US' -AlphabeticParamsOrder:`$false | Out-Null") }
        finally { Pop-Location }
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
