#Requires -Version 7.4
# The module as users import it: run after `dotnet build` (which assembles out/PSLinuxTrace).
BeforeAll {
    $script:ModuleDir = Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace'
    $script:ManifestPath = Join-Path $ModuleDir 'PSLinuxTrace.psd1'
    Import-Module $ManifestPath -Force
    $script:Module = Get-Module PSLinuxTrace
}

AfterAll {
    Remove-Module PSLinuxTrace -ErrorAction SilentlyContinue
}

Describe 'PSLinuxTrace manifest' {
    It 'is a valid manifest' {
        { Test-ModuleManifest -Path $ManifestPath -ErrorAction Stop } | Should -Not -Throw
    }

    It 'targets PowerShell 7.4 Core' {
        $m = Test-ModuleManifest -Path $ManifestPath
        $m.PowerShellVersion | Should -Be ([version]'7.4')
        $m.CompatiblePSEditions | Should -Be @('Core')
    }

    It 'exports exactly the cmdlets the assembly defines, without wildcards' {
        $data = Import-PowerShellDataFile -Path $ManifestPath
        $data.CmdletsToExport | Should -Not -Contain '*'
        $defined = $Module.ImplementingAssembly.GetExportedTypes() |
            Where-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
            ForEach-Object {
                $a = $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
                "$($a.VerbName)-$($a.NounName)"
            }
        @($Module.ExportedCmdlets.Keys | Sort-Object) | Should -Be @($defined | Sort-Object)
        @($data.CmdletsToExport | Sort-Object) | Should -Be @($defined | Sort-Object)
    }

    It 'loads its format files' {
        $data = Import-PowerShellDataFile -Path $ManifestPath
        foreach ($f in $data.FormatsToProcess) {
            Join-Path $ModuleDir $f | Should -Exist
        }
        Get-FormatData -TypeName PSLinuxTrace.Engine.Model.ProcSymbol | Should -Not -BeNullOrEmpty
    }

    It 'loads its types file (how nested records cross remoting)' {
        $data = Import-PowerShellDataFile -Path $ManifestPath
        $data.TypesToProcess | Should -Not -BeNullOrEmpty
        foreach ($f in $data.TypesToProcess) { Join-Path $ModuleDir $f | Should -Exist }
        (Get-TypeData -TypeName PSLinuxTrace.Engine.Model.CoreThread).SerializationDepth | Should -Be 1
    }

    It 'has PSData for the gallery' {
        $data = Import-PowerShellDataFile -Path $ManifestPath
        $data.PrivateData.PSData.Tags | Should -Contain 'Linux'
        $data.PrivateData.PSData.ProjectUri | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.LicenseUri | Should -Not -BeNullOrEmpty
    }

    It 'does not ship System.Management.Automation' {
        Join-Path $ModuleDir 'System.Management.Automation.dll' | Should -Not -Exist
    }
}
