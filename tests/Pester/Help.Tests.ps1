#Requires -Version 7.4
# Every cmdlet and parameter has help, built into MAML by `dotnet build` from docs/en-US.
BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1') -Force
    $script:Commands = Get-Command -Module PSLinuxTrace -CommandType Cmdlet | ForEach-Object { @{ Name = $_.Name } }
}

BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
}

Describe 'Help for <Name>' -ForEach $Commands {
    BeforeAll {
        $script:Help = Get-Help -Name $Name -Full
        $script:Cmd = Get-Command -Name $Name
    }

    It 'has a synopsis and a description' {
        $Help.Synopsis | Should -Not -BeNullOrEmpty
        $Help.Synopsis | Should -Not -Match '^\s*Get-|^\s*\w+-\w+ \['   # not the auto-generated syntax
        ($Help.Description | Out-String) | Should -Not -BeNullOrEmpty
    }

    It 'has at least three examples that use the cmdlet and explain themselves' {
        $Help.Examples.Example.Count | Should -BeGreaterOrEqual 3
        foreach ($e in $Help.Examples.Example) {
            $e.Code | Should -Match ([regex]::Escape($Name))
            ($e.Remarks | Out-String).Trim() | Should -Not -BeNullOrEmpty
        }
    }

    It 'opens its page in the repository''s docs with Get-Help -Online' {
        # A stand-in browser: .NET opens a URL with the first xdg-open in PATH (UseShellExecute on Linux).
        $bin = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-browser-$PID"
        $opened = Join-Path $bin 'opened.txt'
        New-Item -ItemType Directory -Path $bin -Force | Out-Null
        Set-Content -Path (Join-Path $bin 'xdg-open') -Value "#!/bin/sh`necho `"`$1`" >> '$opened'"
        & chmod +x (Join-Path $bin 'xdg-open')
        $savedPath = $env:PATH
        try {
            $env:PATH = "${bin}:$savedPath"
            { Get-Help -Name $Name -Online -ErrorAction Stop } | Should -Not -Throw
            $uri = Wait-Until { Get-Content $opened -ErrorAction Ignore } -What 'the browser to be started'
            $project = (Import-PowerShellDataFile $ModulePath).PrivateData.PSData.ProjectUri
            $uri | Should -Be "$project/blob/main/docs/en-US/$Name.md"
            # The page is one of ours: docs/en-US/<Name>.md in this repository.
            Join-Path $PSScriptRoot '..' '..' 'docs' 'en-US' "$Name.md" | Should -Exist
        } finally {
            $env:PATH = $savedPath
            Remove-Item -Recurse -Force $bin -ErrorAction Ignore
        }
    }

    It 'documents every parameter' {
        $documented = @($Help.Parameters.Parameter.Name)
        foreach ($p in $Cmd.Parameters.Keys | Where-Object { $_ -notin $Common }) {
            $documented | Should -Contain $p
            $ph = $Help.Parameters.Parameter | Where-Object Name -EQ $p
            ($ph.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty
        }
    }
}

Describe 'about_PSLinuxTrace' {
    It 'is found by Get-Help and names every cmdlet' {
        $about = Get-Help about_PSLinuxTrace | Out-String
        $about | Should -Not -BeNullOrEmpty
        foreach ($c in Get-Command -Module PSLinuxTrace -CommandType Cmdlet) {
            $about | Should -Match ([regex]::Escape($c.Name))
        }
    }
}
