#Requires -Version 7.4
# Get-ProcessStack from a user's chair: a service started with Start-Process, read from the pipeline of
# Get-Process, shown by the default view like eu-stack, cross-checked with gdb, and left running untraced;
# errors with their ids. Needs root, cc, gdb.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-stack-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:App = Join-Path $Work 'stackapp'
    & cc -g -O0 -fno-omit-frame-pointer -pthread -o $App (Join-Path $FixtureSource 'checksum.c')
    $script:Service = Start-Process -FilePath $App -ArgumentList 3, service -PassThru -RedirectStandardOutput (Join-Path $Work 'out.txt')
    Wait-Until { (Get-Content (Join-Path $Work 'out.txt') -ErrorAction Ignore) -contains 'ready' } -What 'the service to start' | Out-Null
}

AfterAll {
    if ($Service -and -not $Service.HasExited) { $Service.Kill() }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Get-ProcessStack' {
    It 'reads every thread of a process piped from Get-Process, as gdb sees them, and leaves it running' {
        $stack = Get-Process -Id $Service.Id | Get-ProcessStack
        $stack.Pid | Should -Be $Service.Id
        $stack.Threads.Count | Should -Be 4
        $stack.Threads[0].Tid | Should -Be $Service.Id
        $stack.PausedFor.TotalMilliseconds | Should -BeLessThan 1000
        $workers = $stack.Threads | Select-Object -Skip 1
        $workers | ForEach-Object { $_.Frames.Symbol | Should -Contain 'pslt_checksum_loop' }
        # gdb's frames of the main thread, by pc, equal ours from its first frame in the program.
        $gdb = & gdb -nx -batch -iex 'set debuginfod enabled off' -iex 'set print frame-info location-and-address' -p $Service.Id -ex 'bt' 2>&1
        $mainPc = ($gdb | Select-String '^#\d+\s+0x([0-9a-f]+) in main ').Matches[0].Groups[1].Value
        ('{0:x16}' -f ($stack.Threads[0].Frames | Where-Object Symbol -eq 'main').InstructionPointer) | Should -Be $mainPc.PadLeft(16, '0')
        Assert-Untraced $Service.Id
        $Service.HasExited | Should -BeFalse
    }

    It 'prints each thread and frame like eu-stack, and a summary table on request' {
        $text = Get-ProcessStack -Id $Service.Id | Out-String -Width 200
        $text | Should -Match "PID $($Service.Id) - stackapp \(4 threads, paused [\d.]+ ms\)"
        $text | Should -Match "TID $($Service.Id) \(stackapp\):"
        $text | Should -Match '#\d+\s+0x[0-9a-f]{16} main\+0x[0-9a-f]+( at \S+)? - stackapp'
        $table = Get-ProcessStack -Id $Service.Id | Format-Table -View Summary | Out-String -Width 200
        $table | Should -Match 'MainThreadTop'
        $table | Should -Match "$($Service.Id)\s+stackapp\s+4"
    }

    It 'reads this session''s own process' {
        $self = Get-ProcessStack -Id $PID
        $self.Threads.Count | Should -BeGreaterThan 3
        # A .NET process: native frames through the runtime, and through JIT code (unnamed without ClrMD).
        @($self.Threads.Frames.ModulePath | Where-Object { $_ -like '*/libcoreclr.so' }).Count | Should -BeGreaterThan 0
        @($self.Threads | Where-Object { $_.Frames[0].ModulePath -like '*/libc.so.6' }).Count | Should -BeGreaterThan 0
    }

    It 'reads another pwsh with its managed frames, and -Verbose says nothing false of its assemblies' {
        $cmd = @(Get-PwshCommandLine)
        $ready = Join-Path $Work 'other-pwsh-ready'
        # Read once it runs its command: a runtime still starting up can make the DAC crash (in the worker, which
        # only costs the managed frames: a warning).
        $other = Start-Process -FilePath $cmd[0] -ArgumentList (@($cmd | Select-Object -Skip 1) + '-NoProfile', '-NonInteractive', '-Command', "Set-Content -Path '$ready' -Value ready; Start-Sleep 120") -PassThru
        try {
            Wait-Until { Test-Path $ready } -What 'the other pwsh to run its command' | Out-Null
            $out = Get-ProcessStack -Id $other.Id -Verbose 4>&1
            $stack = $out | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] }
            @($stack.Threads.Frames | Where-Object Kind -eq 'Managed').Count | Should -BeGreaterThan 0 -Because "its warnings: $($stack.Warnings -join '; ')" 
            # Its assemblies and memfd mappings are no ELF files: nothing to find, not "no matching file".
            $verbose = @($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
            $verbose | Where-Object { $_ -like '*no matching file*' } | Should -BeNullOrEmpty
            Assert-Untraced $other.Id
        } finally {
            $other.Kill($true)
        }
    }

    It 'writes an error for a process that does not exist and reads the others' {
        $stacks = Get-ProcessStack -Id 999999999, $Service.Id -ErrorVariable err -ErrorAction SilentlyContinue
        @($stacks).Count | Should -Be 1
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId ProcessNotFound Get-ProcessStack)
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].TargetObject | Should -Be 999999999
    }

    It 'refuses a kernel thread with NotImplemented' {
        Get-ProcessStack -Id 2 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId UnsupportedFeature Get-ProcessStack)
        $err[0].CategoryInfo.Category | Should -Be 'NotImplemented'
    }

    It 'stops cleanly when Select-Object -First 1 has what it wants' {
        $first = Get-ProcessStack -Id $Service.Id, $Service.Id, $PID | Select-Object -First 1
        $first.Pid | Should -Be $Service.Id
        Assert-Untraced $Service.Id
        Get-Process -Name pslinuxtrace-tracer -ErrorAction Ignore | Where-Object { $_.Parent.Id -eq $PID } | Should -BeNullOrEmpty
    }
}
