#Requires -Version 7.4
# Start-SyscallTrace from a user's chair: launched programs compared with strace, attach/detach of a
# running fixture (which must keep running untraced), filters, -Summary, CSV export. Needs root, cc, strace.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1') -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-strace-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:Fixture = Join-Path $Work 'syscalls'
    & cc -g -O0 -pthread -o $Fixture (Join-Path $PSScriptRoot '..' 'Fixtures' 'syscalls.c')

    # The "wait" fixture runs under sh (not a child of this pwsh, whose runtime waits for its own children),
    # prints pid=N and ready, and answers "count" with the number of SIGUSR2 it handled.
    function Start-Waiter {
        $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
        foreach ($a in '-c', 'exec 3<&0; "$0" "$@" <&3 3<&- & wait', $Fixture, 'wait') { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $values = @{}
        while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') { $k, $v = $line -split '=', 2; $values[$k] = $v }
        [pscustomobject]@{ Shell = $p; Id = [int]$values.pid }
    }
    function Get-Count($f) { $f.Shell.StandardInput.WriteLine('count'); $f.Shell.StandardInput.Flush(); $f.Shell.StandardOutput.ReadLine() }
    function Stop-Waiter($f) { $f.Shell.StandardInput.WriteLine('quit'); $f.Shell.StandardInput.Flush(); $f.Shell.WaitForExit(5000) | Out-Null }
    function Get-TracerPid([int] $Id) { [int]((Get-Content "/proc/$Id/status" | Where-Object { $_ -like 'TracerPid:*' }) -split '\s+')[1] }
}

AfterAll {
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Start-SyscallTrace -FilePath' {
    It 'reports the execve first, with its arguments' {
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -RedirectStandardOutput /dev/null
        $first = $events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] } | Select-Object -First 1
        $first.Name | Should -Be 'execve'
        $first.Arguments[0] | Should -Be "`"$Fixture`""
        $first.ReturnValue | Should -Be 0
    }

    It 'matches strace -f for the same filter' {
        $out = Join-Path $Work 'strace.txt'
        & strace -f -qq -o $out -e trace=openat,read,close,write $Fixture basic > $null
        $theirs = Get-Content $out | ForEach-Object { if ($_ -match '^(\d+\s+)?(\w+)\(') { $Matches[2] } }
        $ours = Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -Syscall openat, read, close, write -RedirectStandardOutput /dev/null |
            Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] } | ForEach-Object Name
        $ours | Should -Be $theirs
    }

    It 'finds the failing openat with Where-Object Errno' {
        $failed = Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -RedirectStandardOutput /dev/null | Where-Object Errno
        $miss = $failed | Where-Object { $_.Arguments[1] -eq '"/nonexistent/pslinuxtrace"' }
        $miss.Name | Should -Be 'openat'
        $miss.Errno | Should -Be 'ENOENT'
        $miss.Line | Should -BeLike 'openat(AT_FDCWD, "/nonexistent/pslinuxtrace", O_RDONLY|O_CLOEXEC) = -1 ENOENT*'
    }

    It 'groups the calls of 8 threads with Group-Object' {
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList threads, 8 -Syscall getppid -RedirectStandardOutput /dev/null
        $calls = $events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] }
        ($calls | Group-Object Name | Where-Object Name -eq getppid).Count | Should -Be 40
        ($calls | Group-Object Tid).Count | Should -Be 8
    }

    It 'summarises like strace -c' {
        $rows = Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -Summary -RedirectStandardOutput /dev/null
        ($rows | Where-Object Name -eq getppid).Calls | Should -Be 3
        ($rows | Where-Object Name -eq openat).Errors | Should -BeGreaterOrEqual 1
    }

    It 'exports to CSV' {
        $csv = Join-Path $Work 'calls.csv'
        Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -Syscall '%file' -RedirectStandardOutput /dev/null |
            Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] } |
            Select-Object Pid, Name, ReturnValue, Errno | Export-Csv -Path $csv
        (Import-Csv $csv | Where-Object Errno -eq 'ENOENT').Name | Should -Contain 'openat'
    }

    It 'rejects an unknown system call name' {
        { Start-SyscallTrace -FilePath $Fixture -Syscall no_such_call -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidSyscallFilter,PSLinuxTrace.Commands.StartSyscallTraceCommand'
    }
}

Describe 'Start-SyscallTrace -Id' {
    It 'attaches through the pipeline and detaches on -Timeout, leaving the process unharmed' {
        $f = Start-Waiter
        try {
            $events = Get-Process -Id $f.Id | Start-SyscallTrace -Syscall getppid -Timeout 2
            ($events | Where-Object Name -eq getppid).Count | Should -BeGreaterThan 0
            Get-TracerPid $f.Id | Should -Be 0
            & kill -USR2 $f.Id
            Start-Sleep -Milliseconds 200
            Get-Count $f | Should -Be 'count=1'
        }
        finally { Stop-Waiter $f }
    }

    It 'writes ObjectNotFound for a process that does not exist' {
        Start-SyscallTrace -Id 999999 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}
