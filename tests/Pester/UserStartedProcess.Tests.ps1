#Requires -Version 7.4
# Issue 14's bug, as a user meets it: a service started from this very pwsh with Start-Process (so this
# pwsh's runtime waits for it on SIGCHLD) is traced, snapshotted and inspected like any other process, and
# its Process object stays true: HasExited false while it runs, Kill and ExitCode right afterwards, no
# zombie or twin left. Needs root, cc, gdb.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-user-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:Checksum = Join-Path $Work 'checksum'
    & cc -g -O0 -fno-omit-frame-pointer -pthread -o $Checksum (Join-Path $FixtureSource 'checksum.c')
    # The checksum fixture computes on 2 threads; as a "service" its main thread just waits.
    $script:Service = Start-Process -FilePath $Checksum -ArgumentList 2, service -PassThru -RedirectStandardOutput (Join-Path $Work 'out.txt')
    Wait-Until { (Get-Content (Join-Path $Work 'out.txt') -ErrorAction Ignore) -contains 'ready' } -What 'the service to start' | Out-Null

    # Running, untraced, no thread stopped, no child (no twin), and the Process object agrees.
    function Assert-Unharmed {
        $Service.HasExited | Should -BeFalse -Because 'the runtime must not have taken a ptrace stop for an exit'
        Assert-Untraced $Service.Id
        foreach ($task in Get-ChildItem "/proc/$($Service.Id)/task") {
            (Get-Content "$($task.FullName)/stat" -Raw) -replace '^.*\) ', '' | Should -Not -Match '^[tTZ]'
            Get-ChildId $Service.Id | Should -BeNullOrEmpty
        }
    }
}

AfterAll {
    if ($Service -and -not $Service.HasExited) { $Service.Kill() }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'A process started with Start-Process in this session' {
    It 'is syscall-traced for two seconds and then runs on untraced' {
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $events = Start-SyscallTrace -Id $Service.Id -Timeout 2
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 15 -Because 'the trace must end at its timeout, not hang on a lost stop'
        @($events | Where-Object EventType -eq 'ProcessStart').Count | Should -Be 3
        $events | Where-Object EventType -eq 'ProcessExit' | Should -BeNullOrEmpty
        Assert-Unharmed
    }

    It 'is snapshotted with <_> without a long pause, and gdb reads the core' -ForEach 'CloneTwin', 'WriteTracked', 'Auto' {
        $core = Join-Path $Work "service-$_.core"
        $snap = Save-ProcessSnapshot -Id $Service.Id -Path $core -Method $_
        $snap.Method | Should -Be ($_ -eq 'Auto' ? 'CloneTwin' : $_)
        $snap.Warnings | Should -BeNullOrEmpty
        $snap.PausedFor.TotalMilliseconds | Should -BeLessThan 1000 -Because 'a lost stop made the target wait 5 s in the stopped fallback'
        $gdb = & gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'info threads' $Checksum $core 2>&1
        @($gdb | Select-String '^\*?\s+\d+\s+Thread 0x').Count | Should -Be 3
        Assert-Unharmed
    }

    It 'has its stacks read while it runs' {
        $stack = Get-ProcessStack -Id $Service.Id
        $stack.Threads.Count | Should -Be 3
        $stack.Threads | Select-Object -Skip 1 | ForEach-Object { $_.Frames.Symbol | Should -Contain 'pslt_checksum_loop' }
        Assert-Unharmed
    }

    It 'has its symbols found and its core read back' {
        Get-ProcSymbol -Name main -Id $Service.Id | Select-Object -ExpandProperty ModulePath | Should -Be $Checksum
        $dump = Read-CoreDump -Path (Join-Path $Work 'service-CloneTwin.core')
        $dump.Pid | Should -Be $Service.Id
        Assert-Unharmed
    }

    It 'is killed through its Process object, with the exit code the runtime saw' {
        $Service.Kill()
        $Service.WaitForExit(10000) | Should -BeTrue
        $Service.ExitCode | Should -Be 137
        Test-Path "/proc/$($Service.Id)" | Should -BeFalse -Because 'the runtime reaped it: no zombie is left'
    }
}
