#Requires -Version 7.4
# Get-ProcSymbol from a user's chair: real processes built from tests/Fixtures, addresses checked
# against what the process prints and the bytes at that address. Needs root (or CAP_SYS_PTRACE
# and CAP_SYS_ADMIN), cc and gdb.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
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
        # Should -Match does not set $Matches here: the -match operator does.
        $gdb -match 'Symbol "malloc" is at 0x([0-9a-f]+)' | Should -BeTrue
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
        $err[0].FullyQualifiedErrorId | Should -BeExactly 'ProcessNotFound,PSLinuxTrace.Commands.GetProcSymbolCommand'
    }

    It 'writes nothing when no symbol matches' {
        Get-ProcSymbol -Name pslt_no_such_symbol -Id $PID -ErrorAction Stop | Should -BeNullOrEmpty
        Get-ProcSymbol -Name 'pslt_no_such_*' -Path 'libc.so*' -ErrorAction Stop -WarningAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'writes one ObjectNotFound error when no mapped file matches -Path' {
        $result = Get-ProcSymbol -Name malloc -Path 'no-such-library.so*', '/no/such/dir/*' -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        $result | Should -BeNullOrEmpty
        $err | Should -HaveCount 1
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -BeExactly 'NoMappedFileMatchesPath,PSLinuxTrace.Commands.GetProcSymbolCommand'
        $err[0].Exception.Message | Should -BeLike "*matches -Path 'no-such-library.so*', '/no/such/dir/*'*"
        # A glob that matches a file some process maps is no error, whatever the symbols.
        Get-ProcSymbol -Name pslt_no_such_symbol -Path 'libc.so*' -Id $PID -ErrorAction Stop | Should -BeNullOrEmpty
    }

    It 'rejects an invalid glob with an argument error' {
        { Get-ProcSymbol -Name 'mal[loc' -Id $PID -ErrorAction Stop } |
            Should -Throw -ErrorId (Get-QualifiedId InvalidArgument Get-ProcSymbol)
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

    It 'returns from -Watch when Select-Object -First 1 has its symbol, leaving the process untraced' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $before = Get-BpfFdCount
        $s = Get-ProcSymbol -Name pslt_data_marker -Id $f.Id -Watch -Interval 0.5 | Select-Object -First 1
        $s.Address | Should -Be $f.Values['pslt_data_marker']
        Assert-Untraced $f.Id
        Get-BpfFdCount | Should -Be $before
    }

    It 'skips the processes it may not read when no -Id is given: a Verbose line each, one warning with the count' {
        # The processes whose maps this session cannot read, found the plain way (pid 1 here holds a capability we lack).
        $unreadable = @(Get-ChildItem /proc -Directory | Where-Object Name -Match '^\d+$' | ForEach-Object { [int]$_.Name } |
            Where-Object { try { $null = [System.IO.File]::ReadAllText("/proc/$_/maps"); $false } catch [System.UnauthorizedAccessException] { $true } catch { $false } })
        $unreadable | Should -Not -BeNullOrEmpty -Because 'this scenario needs a process this session may not read (pid 1 here)'
        $out = Get-ProcSymbol -Name malloc -Path 'libc.so*' -ErrorVariable err -WarningVariable warn -Verbose 4>&1 3>$null
        $err | Should -BeNullOrEmpty
        $warn | Should -HaveCount 1
        $warn[0].Message | Should -Match '^Skipped (\d+) process'
        $skippedLines = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Skipped process *' })
        $skippedLines.Count | Should -Be ([int]($warn[0].Message -replace '^Skipped (\d+).*', '$1'))
        # Each process found unreadable above that still lives has its line (others may come and go meanwhile).
        foreach ($p in $unreadable | Where-Object { Test-Path "/proc/$_" }) {
            @($skippedLines | Where-Object Message -Like "Skipped process ${p}: *") | Should -HaveCount 1
        }
        ($skippedLines | Where-Object Message -Like 'Skipped process 1:*').Message | Should -Not -Match 'run as root'
        @($out | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.ProcSymbol] }).Count | Should -BeGreaterThan 0
        ($out | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.ProcSymbol] -and $_.Pid -eq $PID }).Name | Should -Be 'malloc'
    }

    It 'warns once per run with -Watch, not on every interval' {
        $job = Start-ThreadJob -ScriptBlock {
            param($Module)
            Import-Module $Module
            Get-ProcSymbol -Name pslt_no_such_symbol -Watch -Interval 0.3
        } -ArgumentList $ModulePath
        try {
            Start-Sleep -Seconds 3   # several intervals
        } finally { Stop-Job $job }
        $job.ChildJobs[0].Warning | Should -HaveCount 1
        $job.ChildJobs[0].Error | Should -BeNullOrEmpty
        Remove-Job $job -Force
    }

    It 'writes PermissionDenied for a named process it may not read, with the real reason' {
        $theirs = [Convert]::ToUInt64((Get-ProcStatusField 1 CapPrm), 16)
        $ours = [Convert]::ToUInt64((Get-ProcStatusField $PID CapEff), 16)
        $extra = $theirs -band -bnot $ours
        $extra | Should -Not -Be 0 -Because 'this scenario needs a pid 1 that holds a capability this session lacks'
        $names = 0..63 | Where-Object { $extra -band ([uint64]1 -shl $_) } | ForEach-Object { [PSLinuxTrace.Engine.Access.AccessDiagnosis]::CapabilityName($_) }
        Get-ProcSymbol -Name malloc -Id 1 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId PermissionDenied Get-ProcSymbol)
        foreach ($n in $names) { $err[0].Exception.Message | Should -Match $n }
        "$($err[0].Exception.Message) $($err[0].ErrorDetails.RecommendedAction)" | Should -Not -Match 'run as root'
    }

    It 'completes -Name from the symbol tables of the matching files' {
        $f = Start-Fixture $Pie
        $Started.Add($f)
        $line = "Get-ProcSymbol -Id $($f.Id) -Name pslt_da"
        $completion = TabExpansion2 -inputScript $line -cursorColumn $line.Length
        $completion.CompletionMatches.CompletionText | Should -Contain 'pslt_data_marker'
    }
}
