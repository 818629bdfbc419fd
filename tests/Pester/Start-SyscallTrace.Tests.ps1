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

Describe 'Start-SyscallTrace -Engine' {
    It 'traces with eBPF under Auto as root, and says so' {
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -RedirectStandardOutput /dev/null -Verbose 4>&1
        $verbose = $events | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        ($verbose | Where-Object Message -like 'Engine Bpf:*') | Should -Not -BeNullOrEmpty
        ($events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.ProcessStartEvent] -and $_.Kind -eq 'Launch' }).Engine | Should -Be 'Bpf'
        $calls = $events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] }
        ($calls | Where-Object Name -eq getppid).Count | Should -Be 3
        $calls[0].Line | Should -BeLike "execve(`"$Fixture`", *"
    }

    It 'stops at Select-Object -First and kills what it launched' {
        $first = Start-SyscallTrace -FilePath $Fixture -ArgumentList spin, 100000000 -Engine Bpf -Syscall getppid -RedirectStandardOutput /dev/null |
            Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] } | Select-Object -First 5
        $first.Count | Should -Be 5
        Start-Sleep -Milliseconds 200
        Test-Path "/proc/$($first[0].Pid)" | Should -BeFalse
    }

    It 'writes LostEventsEvent objects when the buffer is too small, and their counts add up' {
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList spin, 100000 -Engine Bpf -Syscall getppid -BufferSize 16384 -RedirectStandardOutput /dev/null -WarningAction SilentlyContinue
        $lost = ($events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.LostEventsEvent] } | Measure-Object Count -Sum).Sum
        $calls = ($events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] }).Count
        $lost | Should -BeGreaterThan 0
        # every getppid, plus the exec and exit records
        $records = $calls + ($events | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.ProcessExitEvent] -or ($_ -is [PSLinuxTrace.Engine.Model.ProcessStartEvent] -and $_.Kind -eq 'Exec') }).Count
        $records + $lost | Should -Be 100002
    }

    It 'is PermissionDenied naming CAP_BPF and CAP_PERFMON without them, and Auto falls back to ptrace' {
        $module = Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1'
        # This pwsh again: its apphost next to pwsh.dll (a dotnet-tool pwsh runs as "dotnet").
        $pwsh = Join-Path $PSHOME 'pwsh'
        $script = "Import-Module '$module'; " +
            "try { Start-SyscallTrace -FilePath /bin/true -Engine Bpf -ErrorAction Stop } catch { 'ERR ' + `$_.CategoryInfo.Category + ' ' + `$_.Exception.Message }; " +
            "Start-SyscallTrace -FilePath /bin/true -Syscall execve -Verbose 4>&1 | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message"
        $out = & setpriv --bounding-set '-bpf,-perfmon,-sys_admin' $pwsh -NoProfile -Command $script
        $err = $out | Where-Object { $_ -like 'ERR *' }
        $err | Should -BeLike 'ERR PermissionDenied *CAP_BPF, CAP_PERFMON*'
        $out | Where-Object { $_ -like 'Engine Ptrace: Auto: this process lacks CAP_BPF, CAP_PERFMON*' } | Should -Not -BeNullOrEmpty
    }
}
