#Requires -Version 7.4
# Get-ProcSymbol from a user's chair: real processes built from tests/Fixtures, addresses checked
# against what the process prints and the bytes at that address. Needs root (or CAP_SYS_PTRACE
# and CAP_SYS_ADMIN), cc and gdb.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1') -Force
    $script:Fixtures = Join-Path $PSScriptRoot '..' 'Fixtures'
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null

    function Build-Fixture([string] $Name, [string[]] $Flags = @(), [string] $Output = $Name) {
        $out = Join-Path $Work $Output
        & cc -g -O0 -o $out (Join-Path $Fixtures "$Name.c") @Flags
        if ($LASTEXITCODE -ne 0) { throw "cc failed for $Name" }
        $out
    }

    # Starts a fixture and returns @{ Process; Values } once it printed "ready".
    function Start-Fixture([string] $Path, [string[]] $Arguments = @()) {
        $psi = [System.Diagnostics.ProcessStartInfo]::new($Path)
        foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardInput = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $values = @{}
        while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') {
            if ($null -eq $line) { throw "$Path exited before it was ready" }
            $k, $v = $line -split '=', 2
            $values[$k] = [Convert]::ToUInt64($v.Substring(2), 16)
        }
        [pscustomobject]@{ Process = $p; Id = $p.Id; Values = $values }
    }

    function Read-UInt64([int] $ProcessId, [uint64] $Address) {
        $fs = [System.IO.File]::OpenRead("/proc/$ProcessId/mem")
        try {
            $null = $fs.Seek([int64]$Address, 'Begin')
            $b = [byte[]]::new(8)
            $null = $fs.Read($b, 0, 8)
            [BitConverter]::ToUInt64($b, 0)
        } finally { $fs.Dispose() }
    }

    $script:Pie = Build-Fixture symbols
    $script:NoPie = Build-Fixture symbols @('-no-pie') symbols-nopie
    $script:Static = Build-Fixture symbols @('-static') symbols-static
    $script:Started = [System.Collections.Generic.List[object]]::new()
}

AfterAll {
    foreach ($f in $Started) { if (-not $f.Process.HasExited) { $f.Process.Kill() }; $f.Process.WaitForExit() }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Get-ProcSymbol' {
    It 'finds globals and functions of a <Kind> executable at the addresses the process uses' -ForEach @(
        @{ Kind = 'PIE'; Exe = { $Pie } }
        @{ Kind = 'non-PIE'; Exe = { $NoPie } }
        @{ Kind = 'static'; Exe = { $Static } }
    ) {
        $exe = & $Exe
        $f = Start-Fixture $exe
        $Started.Add($f)
        $found = Get-ProcSymbol -Name pslt_data_marker, pslt_rodata_marker, pslt_function -Id $f.Id -Path $exe
        $found | Should -HaveCount 3
        foreach ($s in $found) {
            $s | Should -BeOfType PSLinuxTrace.Engine.Model.ProcSymbol
            $s.Address | Should -Be $f.Values[$s.Name]
            $s.Pid | Should -Be $f.Id
            $s.ModulePath | Should -Be $exe
        }
        Read-UInt64 $f.Id ($found | Where-Object Name -EQ pslt_data_marker).Address | Should -Be 0x1122334455667788
        Read-UInt64 $f.Id ($found | Where-Object Name -EQ pslt_rodata_marker).Address | Should -Be ([uint64]'0x8877665544332211')
    }

    It 'takes process ids from the pipeline by property name' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $found = Get-Process -Id $f.Id | Get-ProcSymbol -Name pslt_data_marker
        $found.Address | Should -Be $f.Values['pslt_data_marker']
        $byPid = [pscustomobject]@{ PID = $f.Id } | Get-ProcSymbol -Name pslt_data_marker
        $byPid.Address | Should -Be $f.Values['pslt_data_marker']
    }

    It 'matches wildcards against the symbol tables' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $names = Get-ProcSymbol -Name 'pslt_*_marker' -Id $f.Id | Select-Object -ExpandProperty Name | Sort-Object
        $names | Should -Be @('pslt_data_marker', 'pslt_rodata_marker')
    }

    It 'agrees with gdb on libc''s malloc' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $s = Get-ProcSymbol -Name malloc -Path 'libc.so*' -Id $f.Id
        $gdb = & gdb -nx -batch -iex 'set debuginfod enabled off' -p $f.Id -ex 'info address malloc' 2>$null | Out-String
        $gdb | Should -Match 'Symbol "malloc" is at 0x([0-9a-f]+)'
        $s.Address | Should -Be ([Convert]::ToUInt64($Matches[1], 16))
        (Get-Content "/proc/$($f.Id)/status" | Select-String '^TracerPid:\s+0$') | Should -Not -BeNullOrEmpty
    }

    It 'resolves a binary that was deleted while running' {
        $copy = Join-Path $Work 'deleted-copy'
        Copy-Item $Pie $copy
        & chmod +x $copy
        $f = Start-Fixture $copy
        $Started.Add($f)
        Remove-Item $copy
        $s = Get-ProcSymbol -Name pslt_data_marker -Id $f.Id
        $s.ModuleDeleted | Should -BeTrue
        $s.Address | Should -Be $f.Values['pslt_data_marker']
    }

    It 'writes a non-terminating ObjectNotFound error for a pid that does not exist' {
        $p = Start-Process -FilePath /bin/true -PassThru
        $p.WaitForExit()
        $result = Get-ProcSymbol -Name malloc -Id $p.Id -ErrorVariable err -ErrorAction SilentlyContinue
        $result | Should -BeNullOrEmpty
        $err | Should -HaveCount 1
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -Be 'ProcessNotFound,PSLinuxTrace.Commands.GetProcSymbolCommand'
    }

    It 'writes nothing when nothing matches' {
        Get-ProcSymbol -Name pslt_no_such_symbol -Id $PID -ErrorAction Stop | Should -BeNullOrEmpty
        Get-ProcSymbol -Name malloc -Path 'no-such-library.so' -Id $PID -ErrorAction Stop | Should -BeNullOrEmpty
    }

    It 'rejects an invalid glob with an argument error' {
        { Get-ProcSymbol -Name 'mal[loc' -Id $PID -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidArgument,PSLinuxTrace.Commands.GetProcSymbolCommand'
    }

    It 'shows addresses in hex in the default view' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $text = Get-ProcSymbol -Name pslt_data_marker -Id $f.Id | Out-String
        $text | Should -Match ('0x{0:x}' -f $f.Values['pslt_data_marker'])
    }

    It 'round-trips through ConvertTo-Json and Export-Csv' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $s = Get-ProcSymbol -Name pslt_data_marker -Id $f.Id
        ($s | ConvertTo-Json | ConvertFrom-Json).Address | Should -Be $f.Values['pslt_data_marker']
        $csv = Join-Path $Work 'symbols.csv'
        $s | Export-Csv -Path $csv
        [uint64](Import-Csv $csv).Address | Should -Be $f.Values['pslt_data_marker']
    }

    It 'emits new processes with -Watch until stopped' {
        $job = Start-ThreadJob -ScriptBlock {
            param($Module, $Exe)
            Import-Module $Module
            Get-ProcSymbol -Name pslt_data_marker -Path $Exe -Watch -Interval 0.5
        } -ArgumentList (Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1'), $Pie
        try {
            Start-Sleep -Seconds 1
            $f = Start-Fixture $Pie
            $Started.Add($f)
            $deadline = (Get-Date).AddSeconds(20)
            $seen = @()
            while ((Get-Date) -lt $deadline -and -not ($seen | Where-Object Pid -EQ $f.Id)) {
                Start-Sleep -Milliseconds 250
                $seen += @(Receive-Job $job)
            }
            ($seen | Where-Object Pid -EQ $f.Id).Address | Should -Be $f.Values['pslt_data_marker']
            # Each (process, module, symbol) once.
            @($seen | Where-Object Pid -EQ $f.Id).Count | Should -Be 1
        } finally {
            Stop-Job $job
            Remove-Job $job -Force
        }
    }

    It 'completes -Name from the symbol tables of the matching files' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $line = "Get-ProcSymbol -Id $($f.Id) -Name pslt_da"
        $completion = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $completion.CompletionMatches.CompletionText | Should -Contain 'pslt_data_marker'
    }
}
