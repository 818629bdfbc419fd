#Requires -Version 7.4
# Save-ProcessSnapshot from a user's chair: live snapshots of a checksumming fixture (which must keep
# computing correctly), gdb and Read-CoreDump round trips, launch snapshots. Needs root, cc, gdb.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-snap-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $fixtures = Join-Path $PSScriptRoot '..' 'Fixtures'
    $script:Checksum = Join-Path $Work 'checksum'
    $script:Launch = Join-Path $Work 'launch'
    & cc -g -O0 -fno-omit-frame-pointer -pthread -o $Checksum (Join-Path $fixtures 'checksum.c')
    & cc -g -O0 -fno-omit-frame-pointer -pthread -o $Launch (Join-Path $fixtures 'launch.c')

    # The fixture is a child of this pwsh, as a user's service started from it would be (the tracer
    # process does the ptrace work, so the runtime's own wait for its children takes nothing from it);
    # it answers "status" with rounds=N errors=N.
    function Start-Checksum([int] $Threads) {
        $psi = [System.Diagnostics.ProcessStartInfo]::new($Checksum)
        $psi.ArgumentList.Add("$Threads")
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $values = @{}
        while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') { $k, $v = $line -split '=', 2; $values[$k] = $v }
        [pscustomobject]@{ Process = $p; Id = [int]$values.pid; Marker = [Convert]::ToUInt64($values.pslt_marker.Substring(2), 16) }
    }
    function Get-Status($f) {
        $f.Process.StandardInput.WriteLine('status'); $f.Process.StandardInput.Flush()
        $f.Process.StandardOutput.ReadLine() -match 'rounds=(\d+) errors=(\d+)' | Out-Null
        [pscustomobject]@{ Rounds = [long]$Matches[1]; Errors = [long]$Matches[2] }
    }
    function Stop-Checksum($f) { & kill $f.Id 2>$null; $f.Process.WaitForExit(5000) | Out-Null }
}

AfterAll {
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Save-ProcessSnapshot' {
    It 'snapshots a running 5-thread process that keeps computing correctly' {
        $f = Start-Checksum 4
        try {
            $before = Get-Status $f
            $snap = Save-ProcessSnapshot -Id $f.Id -Path (Join-Path $Work 'live.core')
            $snap | Should -BeOfType PSLinuxTrace.Engine.Model.ProcessSnapshot
            $snap.Threads | Should -Be 5
            # Auto: a copy-on-write twin for a process this small (write tracking past 4 GiB of anonymous memory).
            $snap.Method | Should -Be 'CloneTwin'
            $snap.PausedFor | Should -BeLessThan $snap.Duration
            Start-Sleep -Milliseconds 300
            $after = Get-Status $f
            $after.Rounds | Should -BeGreaterThan $before.Rounds
            $after.Errors | Should -Be 0
            (Get-Content "/proc/$($f.Id)/status" | Select-String '^TracerPid:\s+0$') | Should -Not -BeNullOrEmpty
        } finally { Stop-Checksum $f }
    }

    # Auto makes a twin of a process this small, as -Method CloneTwin does; -Method WriteTracked tracks its
    # writes, or (before Linux 6.7) warns that it cannot and makes a twin.
    It 'writes a core that Read-CoreDump and gdb read back with -Method <Method>' -ForEach @(
        @{ Method = 'Auto'; Used = 'CloneTwin' }, @{ Method = 'CloneTwin'; Used = 'CloneTwin' }, @{ Method = 'WriteTracked'; Used = 'WriteTracked' }
    ) {
        $f = Start-Checksum 2
        try {
            $core = Join-Path $Work "roundtrip-$Method.core"
            $snap = Save-ProcessSnapshot -Id $f.Id -Path $core -Method $Method -WarningVariable warned -WarningAction SilentlyContinue
            if ($Method -eq 'WriteTracked' -and $warned) {
                $warned[0].Message | Should -Match 'cannot track writes'
                $Used = 'CloneTwin'
            }
            $snap.Method | Should -Be $Used
            $dump = $snap | Read-CoreDump
            $dump.Producer | Should -Be 'PSLinuxTrace'
            # readelf sees the producer note (owner PSLINUXTRACE; it names type 2 after the CORE note of that number).
            (& readelf -n $core | Select-String '^\s+PSLINUXTRACE\s+0x[0-9a-f]+\s') | Should -Not -BeNullOrEmpty
            $dump.Pid | Should -Be $f.Id
            $dump.Threads | Should -HaveCount 3
            $dump.ReadPointer($f.Marker) | Should -Be 0x5ca1ab1e0ddba11
            $gdb = & gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'info threads' -ex 'p/x pslt_marker' $Checksum $core 2>$null | Out-String
            $gdb | Should -Match '0x5ca1ab1e0ddba11'
            ([regex]::Matches($gdb, '(?m)^\*?\s+\d+\s+(?:Thread 0x[0-9a-f]+ \()?LWP \d+')).Count | Should -Be 3
        } finally { Stop-Checksum $f }
    }

    It 'takes processes from the pipeline into a folder' {
        $f = Start-Checksum 1
        try {
            $dir = Join-Path $Work 'cores'
            New-Item -ItemType Directory -Path $dir -Force | Out-Null
            $snap = Get-Process -Id $f.Id | Save-ProcessSnapshot -Path $dir
            $snap.Path | Should -Be (Join-Path $dir "core.$($f.Id)")
            $snap.Path | Should -Exist
        } finally { Stop-Checksum $f }
    }

    It 'refuses to overwrite without -Force and does nothing with -WhatIf' {
        $f = Start-Checksum 1
        try {
            $core = Join-Path $Work 'exists.core'
            Set-Content -Path $core -Value 'keep me'
            Save-ProcessSnapshot -Id $f.Id -Path $core -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId SnapshotFileExists Save-ProcessSnapshot)
            Get-Content $core | Should -Be 'keep me'
            Save-ProcessSnapshot -Id $f.Id -Path (Join-Path $Work 'whatif.core') -WhatIf
            Join-Path $Work 'whatif.core' | Should -Not -Exist
        } finally { Stop-Checksum $f }
    }

    It 'reports a missing process as ObjectNotFound' {
        $p = Start-Process -FilePath /bin/true -PassThru; $p.WaitForExit()
        Save-ProcessSnapshot -Id $p.Id -Path (Join-Path $Work 'missing.core') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId ProcessNotFound Save-ProcessSnapshot)
        Join-Path $Work 'missing.core' | Should -Not -Exist
    }

    It 'reports a zombie as ObjectNotFound and a kernel thread as NotImplemented, writing nothing' {
        # sh forks a child that exits at once, then becomes sleep, which never waits for it.
        $sh = Start-Shell 'true & exec sleep 30' 
        try {
            $zombie = $null
            for ($i = 0; $i -lt 300 -and -not $zombie; $i++) {
                $zombie = (Get-Content "/proc/$($sh.Id)/task/$($sh.Id)/children" -Raw) -split ' ' | Where-Object { $_ } |
                    Where-Object { (Get-Content "/proc/$_/status") -match '^State:\s+Z' } | Select-Object -First 1
                if (-not $zombie) { Start-Sleep -Milliseconds 20 }
            }
            $zombie | Should -Not -BeNullOrEmpty
            Save-ProcessSnapshot -Id $zombie -Path (Join-Path $Work 'zombie.core') -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $err[0].Exception.Message | Should -Match 'exited'
            Join-Path $Work 'zombie.core' | Should -Not -Exist
        } finally { $sh.Kill(); $sh.WaitForExit() }

        Save-ProcessSnapshot -Id 2 -Path (Join-Path $Work 'kthread.core') -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].CategoryInfo.Category | Should -Be 'NotImplemented'
        $err2[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId UnsupportedFeature Save-ProcessSnapshot)
        Join-Path $Work 'kthread.core' | Should -Not -Exist
    }

    It 'says why it may not snapshot pid 1, and writes nothing' {
        $theirs = [Convert]::ToUInt64((Get-ProcStatusField 1 CapPrm), 16)
        $ours = [Convert]::ToUInt64((Get-ProcStatusField $PID CapPrm), 16)
        ($theirs -band -bnot $ours) | Should -Not -Be 0 -Because 'this scenario needs a pid 1 that holds a capability this session lacks'
        $core = Join-Path $Work 'init.core'
        Save-ProcessSnapshot -Id 1 -Path $core -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId PermissionDenied Save-ProcessSnapshot)
        $err[0].Exception.Message | Should -Match 'CAP_'
        "$($err[0].Exception.Message) $($err[0].ErrorDetails.RecommendedAction)" | Should -Not -Match 'run as root'
        $core | Should -Not -Exist
    }

    It 'writes relative paths where PowerShell is and shows the method in its table' {
        $f = Start-Checksum 1
        Push-Location $Work
        try {
            $snap = Save-ProcessSnapshot -Id $f.Id -Path ./relative.core
            $snap.Path | Should -Be (Join-Path $Work 'relative.core')
            $snap.Path | Should -Exist
            $text = $snap | Out-String -Width 200
            $text | Should -Match '(?m)^\s*Pid\s+Threads\s+MemoryMiB\s+PausedMs\s+TotalMs\s+Method\s+Path\s*$'
            $text | Should -Match "\s$($snap.Method)\s+$([regex]::Escape($snap.Path))"
            $launched = Save-ProcessSnapshot -FilePath ./launch -Path ./launched.core -RedirectStandardOutput ./launched.out
            $launched.Path | Should -Be (Join-Path $Work 'launched.core')
            (Read-CoreDump ./launched.core).Producer | Should -Be 'PSLinuxTrace'
            ($launched | Out-String -Width 200) | Should -Match '\sLaunchUntilUnreplayable\s'
        } finally { Pop-Location; Stop-Checksum $f }
    }

    It 'snapshots a launched program at its first unreplayable system call' {
        $core = Join-Path $Work 'launch.core'
        $snap = Save-ProcessSnapshot -FilePath $Launch -Path $core -RedirectStandardOutput (Join-Path $Work 'launch.out')
        $snap.StoppedAtSyscall | Should -Match '^write\(0x1, '
        $snap.Method | Should -Be 'LaunchUntilUnreplayable'
        Get-Content (Join-Path $Work 'launch.out') | Should -BeNullOrEmpty
        $dump = Read-CoreDump $core
        ($dump.Threads[0].Frames | Where-Object ModulePath -EQ $Launch | Select-Object -First 1).Symbol | Should -Be 'pslt_first_write'
    }

    It 'refuses a program that starts threads first, with a clear error' {
        Save-ProcessSnapshot -FilePath $Launch -ArgumentList threads -Path (Join-Path $Work 'mt.core') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match 'multi-threaded'
        Join-Path $Work 'mt.core' | Should -Not -Exist
    }
}
