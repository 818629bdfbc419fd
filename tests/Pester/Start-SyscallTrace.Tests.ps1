#Requires -Version 7.4
# Start-SyscallTrace from a user's chair: launched programs compared with strace, attach/detach of a
# running fixture (which must keep running untraced), filters, -Summary, CSV export. Needs root, cc, strace.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-strace-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:Fixture = Join-Path $Work 'syscalls'
    & cc -g -O0 -pthread -o $Fixture (Join-Path $PSScriptRoot '..' 'Fixtures' 'syscalls.c')

    # The "wait" fixture is a child of this pwsh, as a service a user started would be; it prints pid=N
    # and ready, and answers "count" with the number of SIGUSR2 it handled.
    function Start-Waiter {
        $psi = [System.Diagnostics.ProcessStartInfo]::new($Fixture)
        $psi.ArgumentList.Add('wait')
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $values = @{}
        while (($line = $p.StandardOutput.ReadLine()) -ne 'ready') { $k, $v = $line -split '=', 2; $values[$k] = $v }
        [pscustomobject]@{ Process = $p; Id = [int]$values.pid }
    }
    function Get-Count($f) { $f.Process.StandardInput.WriteLine('count'); $f.Process.StandardInput.Flush(); $f.Process.StandardOutput.ReadLine() }
    function Stop-Waiter($f) { $f.Process.StandardInput.WriteLine('quit'); $f.Process.StandardInput.Flush(); $f.Process.WaitForExit(5000) | Out-Null }
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

    It 'names every event of a launched program after the program, the launch event too, with <Engine>' -ForEach @{ Engine = 'Ptrace' }, @{ Engine = 'Bpf' } {
        $events = @(Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -Engine $Engine -RedirectStandardOutput /dev/null)
        $events[0].Kind | Should -Be 'Launch'
        @($events.ProcessName | Sort-Object -Unique) | Should -Be @('syscalls') -Because 'the launcher shell that execs the program is not the user''s'
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
        # As strace -y: AT_FDCWD with the directory it stands for, the program's (this location).
        $miss.Line | Should -BeLike "openat(AT_FDCWD<$PWD>, `"/nonexistent/pslinuxtrace`", O_RDONLY|O_CLOEXEC) = -1 ENOENT*"
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

    It 'ends the launched program when Select-Object -First 1 stops the pipeline' {
        $bpf = Get-BpfFdCount
        $start = Start-SyscallTrace -FilePath $Fixture -ArgumentList spin, 100000000 | Select-Object -First 1
        $start.Kind | Should -Be 'Launch'
        $start.ExecutablePath | Should -Be $Fixture
        # Killed and reaped by the time the pipeline returns: no process, not even a zombie.
        "/proc/$($start.Pid)" | Should -Not -Exist
        Get-BpfFdCount | Should -Be $bpf
    }

    It 'rejects an unknown system call name' {
        { Start-SyscallTrace -FilePath $Fixture -Syscall no_such_call -ErrorAction Stop } | Should -Throw -ErrorId (Get-QualifiedId InvalidSyscallFilter Start-SyscallTrace)
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

    It 'leaves the process running untraced when Select-Object -First 1 stops the pipeline' {
        $f = Start-Waiter
        try {
            $bpf = Get-BpfFdCount
            $first = Start-SyscallTrace -Id $f.Id | Select-Object -First 1
            $first.EventType | Should -Be 'ProcessStart'
            Assert-Untraced $f.Id
            Get-BpfFdCount | Should -Be $bpf
            # A second trace is not refused as "already traced by" this pwsh.
            $calls = Start-SyscallTrace -Id $f.Id -Syscall getppid | Select-Object -Skip 1 -First 2
            $calls.Name | Should -Be @('getppid', 'getppid')
            Assert-Untraced $f.Id
            & kill -USR2 $f.Id
            Start-Sleep -Milliseconds 200
            Get-Count $f | Should -Be 'count=1'   # it ran on and handled the signal
        }
        finally { Stop-Waiter $f }
    }

    It 'writes ObjectNotFound for a process that does not exist' {
        Start-SyscallTrace -Id 999999 -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId ProcessNotFound Start-SyscallTrace)
    }

    It 'says why it cannot trace this session''s own process' {
        Start-SyscallTrace -Id $PID -Timeout 1 -ErrorVariable err -ErrorAction SilentlyContinue
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId PermissionDenied Start-SyscallTrace)
        $err[0].Exception.Message | Should -Match 'cannot trace itself'
        $err[0].ErrorDetails.RecommendedAction | Should -Match 'another PowerShell session'
    }

    It 'names the capability a process holds that this session lacks, and does not tell root to run as root' {
        # Which of pid 1's permitted capabilities this process lacks, from /proc (pid 1 of these machines holds one).
        $theirs = [Convert]::ToUInt64((Get-ProcStatusField 1 CapPrm), 16)
        $ours = [Convert]::ToUInt64((Get-ProcStatusField $PID CapPrm), 16)
        $extra = $theirs -band -bnot $ours
        $extra | Should -Not -Be 0 -Because 'this scenario needs a pid 1 that holds a capability this session lacks'
        $bit = [System.Numerics.BitOperations]::TrailingZeroCount($extra)
        $name = [PSLinuxTrace.Engine.Access.AccessDiagnosis]::CapabilityName($bit)
        (& capsh --decode=$('{0:x}' -f (1 -shl $bit)) 2>$null) -replace '^0x[0-9a-f]+=', '' | Should -Be $name.ToLowerInvariant()
        # ptrace's rule (the eBPF engine, which Auto picks as root, needs no ptrace access to the target).
        Start-SyscallTrace -Id 1 -Timeout 1 -Engine Ptrace -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId PermissionDenied Start-SyscallTrace)
        $err[0].Exception.Message | Should -Match $name
        $err[0].Exception.MissingCapability | Should -Match $name
        "$($err[0].Exception.Message) $($err[0].ErrorDetails.RecommendedAction)" | Should -Not -Match 'run as root'
    }

    It 'reports a process another tracer holds as ResourceBusy, naming the tracer' {
        $f = Start-Waiter
        $strace = Start-Process -FilePath strace -ArgumentList "-qq -o /dev/null -p $($f.Id)" -PassThru
        try {
            $tracer = Wait-Until { $t = [int](Get-ProcStatusField $f.Id TracerPid); if ($t -gt 0) { $t } } -What 'strace to attach'
            Start-SyscallTrace -Id $f.Id -Timeout 1 -Engine Ptrace -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId TargetBusy Start-SyscallTrace)
            $err[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
            $err[0].Exception.OwnerPid | Should -Be $tracer
            # The eBPF engine does not stop the process, so another tracer is no obstacle to it.
            $calls = Start-SyscallTrace -Id $f.Id -Timeout 1 -Engine Bpf -Syscall getppid -ErrorAction Stop
            ($calls | Where-Object Name -eq getppid) | Should -Not -BeNullOrEmpty
        }
        finally { $strace.Kill(); $strace.WaitForExit(); Stop-Waiter $f }
    }
}

Describe 'Start-SyscallTrace where the user is' {
    BeforeAll {
        $script:Here = Join-Path $Work 'here'
        New-Item -ItemType Directory -Path $Here -Force | Out-Null
        Copy-Item -LiteralPath $Fixture -Destination (Join-Path $Here 'app')
    }

    It 'starts a program from PATH in the current location, as Start-Process does' {
        Push-Location $Here
        try {
            $events = Start-SyscallTrace -FilePath pwd -RedirectStandardOutput pwd.txt -Syscall getcwd
            Get-Content (Join-Path $Here 'pwd.txt') | Should -Be $Here
            ($events | Where-Object EventType -eq 'ProcessStart' | Select-Object -First 1).Arguments | Should -Contain "`"$((Get-Command pwd -CommandType Application)[0].Source)`""
        } finally { Pop-Location }
    }

    It 'runs git in the repository it is called from' {
        $repo = Join-Path $Work 'repo'
        & git init -q $repo
        Push-Location $repo
        try {
            Start-SyscallTrace -FilePath git -ArgumentList 'rev-parse', '--show-toplevel' -RedirectStandardOutput top.txt -RedirectStandardError err.txt -Syscall chdir | Out-Null
            Get-Content (Join-Path $repo 'top.txt') | Should -Be $repo
            Get-Content (Join-Path $repo 'err.txt') | Should -BeNullOrEmpty
        } finally { Pop-Location }
    }

    It 'finds ./app, a PSDrive path and ~ relative to PowerShell''s location' {
        Push-Location $Here
        $drive = New-PSDrive -Name PsltHere -PSProvider FileSystem -Root $Here
        try {
            $rel = Start-SyscallTrace -FilePath ./app -ArgumentList basic -RedirectStandardOutput ./out.txt -Syscall getppid
            ($rel | Where-Object EventType -eq 'ProcessExit').Result | Should -Be '3'
            Get-Content (Join-Path $Here 'out.txt') | Should -Be 'hello'
            $viaDrive = Start-SyscallTrace -FilePath PsltHere:/app -ArgumentList basic -RedirectStandardOutput "~/pslt-out-$PID.txt" -Syscall getppid
            ($viaDrive | Where-Object Name -eq getppid) | Should -HaveCount 3
            Join-Path $HOME "pslt-out-$PID.txt" | Should -Exist
        } finally {
            Pop-Location
            Remove-PSDrive $drive
            Remove-Item -LiteralPath (Join-Path $HOME "pslt-out-$PID.txt") -ErrorAction Ignore
        }
    }

    It 'reports a program that does not exist as ObjectNotFound' {
        Push-Location $Here
        try {
            { Start-SyscallTrace -FilePath ./no-such-app -ErrorAction Stop } | Should -Throw -ErrorId (Get-QualifiedId FileNotFound Start-SyscallTrace)
            { Start-SyscallTrace -FilePath pslt-no-such-program -ErrorAction Stop } | Should -Throw -ErrorId (Get-QualifiedId FileNotFound Start-SyscallTrace)
        } finally { Pop-Location }
    }
}

Describe 'Start-SyscallTrace and the session''s standard streams' {
    # A user's pwsh with its stdin, stdout and stderr on pipes (a script in a pipeline, CI): the
    # launched program must read and write those, as a program pwsh starts itself does, while the
    # trace stays whole. The ptrace engine runs in the tracer process, whose connection must not be them.
    It 'a program launched under <Engine> reads the session''s stdin and writes its stdout and stderr, and every event arrives' -ForEach @(
        @{ Engine = 'Ptrace' }, @{ Engine = 'Bpf' }
    ) {
        $inner = Join-Path $TestDrive "streams-$Engine.ps1"
        Set-Content -LiteralPath $inner -Value @'
param($Module, $Engine)
Import-Module $Module
$events = @(Start-SyscallTrace -Engine $Engine -FilePath /bin/sh -ArgumentList '-c', 'read x; echo "got:$x"; echo to-stderr >&2; seq 1 20000')
$exit = $events | Where-Object EventType -eq 'ProcessExit' | Select-Object -Last 1
"@@ exit=$($exit.Result) engine=$(($events | Where-Object EventType -eq 'ProcessStart' | Select-Object -First 1).Engine) reads=$(@($events | Where-Object Name -eq 'read').Count)"
'@
        $command = Get-PwshCommandLine
        $psi = [System.Diagnostics.ProcessStartInfo]::new($command[0])
        foreach ($a in @($command | Select-Object -Skip 1) + @('-NoProfile', '-File', $inner, (Resolve-Path $ModulePath).Path, $Engine)) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardInput = $true; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $p.StandardInput.WriteLine('typed-line'); $p.StandardInput.Close()
        $err = $p.StandardError.ReadToEndAsync()
        $out = $p.StandardOutput.ReadToEndAsync()
        $p.WaitForExit(60000) | Should -BeTrue
        $lines = $out.Result -split "`n" | ForEach-Object TrimEnd
        $lines[0] | Should -Be 'got:typed-line'
        @($lines | Where-Object { $_ -match '^\d+$' }) | Should -Be @(1..20000 | ForEach-Object ToString)
        $summary = @($lines | Where-Object { $_ -like '@@*' })
        $summary | Should -HaveCount 1
        $summary[0] -match "^@@ exit=0 engine=$Engine reads=(\d+)$" | Should -BeTrue -Because $summary[0]
        [int]$Matches[1] | Should -BeGreaterThan 0
        $err.Result.Trim() | Should -Be 'to-stderr'
        $p.ExitCode | Should -Be 0
    }
}

Describe 'Start-SyscallTrace output' {
    It 'prints a mixed stream as one table, one strace line per event' {
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList signal -RedirectStandardOutput /dev/null
        @($events | ForEach-Object EventType | Sort-Object -Unique) | Should -Be @('Syscall', 'Signal', 'ProcessStart', 'ProcessExit')
        $text = $events | Out-String -Width 200
        ([regex]::Matches($text, '(?m)^\s*Tid\s+Event\s+Duration\s*$')).Count | Should -Be 1   # one table header for all
        $text | Should -Match '--- SIGUSR1 \{si_signo=SIGUSR1, si_code=SI_USER, si_pid=\d+, si_uid=0\} ---'
        $text | Should -Match '\+\+\+ exited with 0 \+\+\+'
        $text | Should -Match 'kill\(\d+, SIGUSR1\) = 0'
        $text | Should -Not -Match '(?m)^RawArguments\s*:'   # no list view for syscalls
        # The same lines strace prints for the signal and the exit.
        $out = Join-Path $Work 'strace-signal.txt'
        & strace -q -o $out $Fixture signal > $null
        $theirs = Get-Content $out
        ($theirs | Where-Object { $_ -like '--- SIGUSR1 *' }) -replace 'si_pid=\d+', 'si_pid=N' |
            Should -Be (($events | Where-Object EventType -eq 'Signal').Line -replace 'si_pid=\d+', 'si_pid=N')
        $theirs[-1] | Should -Be ($events | Where-Object { $_.EventType -eq 'ProcessExit' -and -not $_.IsThread }).Line
    }

    It 'exports a mixed stream to CSV with Name, Arguments, Result and Errno on every row' {
        $csv = Join-Path $Work 'mixed.csv'
        $events = Start-SyscallTrace -FilePath $Fixture -ArgumentList signal -RedirectStandardOutput /dev/null
        $events[0].EventType | Should -Be 'ProcessStart'   # the first object decides Export-Csv's columns
        $events | Export-Csv -Path $csv
        $rows = Import-Csv $csv
        $rows | Should -HaveCount $events.Count
        foreach ($column in 'EventType', 'Name', 'Arguments', 'Result', 'Errno', 'Line') { $rows[0].PSObject.Properties.Name | Should -Contain $column }
        $kill = $rows | Where-Object Name -eq 'kill'
        $kill.Arguments | Should -Match '^\d+, SIGUSR1$'
        $kill.Result | Should -Be '0'
        $kill.Line | Should -Be "kill($($kill.Arguments)) = 0"
        ($rows | Where-Object EventType -eq 'Signal').Name | Should -Be 'SIGUSR1'
        ($rows | Where-Object { $_.EventType -eq 'ProcessExit' }).Result | Should -Contain '0'
    }
}

Describe 'Start-SyscallTrace -StackTrace' {
    BeforeAll {
        # strace -k's stacks of the same program's getppid calls: per call, the module of each frame.
        $script:StraceOut = Join-Path $Work 'strace-k.txt'
        & strace -f -qq -k -e trace=getppid -e signal=none -o $StraceOut $Fixture spin 3 > /dev/null
        $script:StraceStacks = [System.Collections.Generic.List[object]]::new()
        foreach ($line in Get-Content $StraceOut) {
            if ($line -like '*getppid(*') { $StraceStacks.Add([System.Collections.Generic.List[string]]::new()) }
            elseif ($line -match '^\s*> (\S+)\(' -and $StraceStacks.Count) { $StraceStacks[-1].Add($Matches[1]) }
        }
    }

    It 'gives each call the stack strace -k prints for it, and Auto says it picked ptrace for that' {
        $out = Start-SyscallTrace -FilePath $Fixture -ArgumentList spin, 3 -Syscall getppid -StackTrace -RedirectStandardOutput /dev/null -Verbose 4>&1
        ($out | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Engine Ptrace: Auto: stack traces need*' }) | Should -Not -BeNullOrEmpty
        $calls = @($out | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] })
        $calls | Should -HaveCount 3
        $StraceStacks | Should -HaveCount 3
        for ($i = 0; $i -lt 3; $i++) {
            @($calls[$i].StackTrace.ModulePath) | Should -Be @($StraceStacks[$i]) -Because "call $i has strace -k's frames, module by module"
            $main = $calls[$i].StackTrace | Where-Object Symbol -eq 'main'
            $main | Should -HaveCount 1
            $main.ModulePath | Should -Be $Fixture
            Split-Path -Leaf $main.File | Should -Be 'syscalls.c'
            $main.Line | Should -BeGreaterThan 0
        }
    }

    It 'gives calls from libc full stacks when the first stack was taken in ld.so, before libc was mapped' {
        # The first openat comes from ld.so with only the program and ld.so mapped; the last two from main
        # through libc's syscall(), mapped since: their stacks need the module map made again.
        $straceOut = Join-Path $Work 'strace-k-openat.txt'
        & strace -f -qq -k -e trace=openat -e signal=none -o $straceOut $Fixture basic > /dev/null
        $expected = [System.Collections.Generic.List[object]]::new()
        foreach ($line in Get-Content $straceOut) {
            if ($line -like '*openat(*') { $expected.Add([System.Collections.Generic.List[string]]::new()) }
            elseif ($line -match '^\s*> (\S+)\(' -and $expected.Count) { $expected[-1].Add($Matches[1]) }
        }
        $calls = @(Start-SyscallTrace -FilePath $Fixture -ArgumentList basic -Syscall openat -StackTrace -RedirectStandardOutput /dev/null |
            Where-Object Name -eq openat)
        $calls.Count | Should -Be $expected.Count
        $calls.Count | Should -BeGreaterThan 2
        $calls[0].StackTrace[0].ModulePath | Should -BeLike '*/ld-linux-x86-64.so.2'
        for ($i = 0; $i -lt $calls.Count; $i++) {
            # strace -k prints no inlined frames (ld.so's _dl_start_final is one): compare the real ones.
            @(($calls[$i].StackTrace | Where-Object { -not $_.IsInlined }).ModulePath) | Should -Be @($expected[$i]) -Because "openat $i has strace -k's frames, module by module"
        }
        foreach ($c in $calls[-2..-1]) {
            $c.StackTrace[0].ModulePath | Should -BeLike '*/libc.so.6'
            ($c.StackTrace | Where-Object Symbol -eq 'main').ModulePath | Should -Be $Fixture
        }
    }

    It 'prints each call with its frames under it, as strace -k does' {
        $text = Start-SyscallTrace -FilePath $Fixture -ArgumentList spin, 1 -Syscall getppid -StackTrace -RedirectStandardOutput /dev/null |
            Where-Object Name -eq getppid | Out-String -Width 400
        $text | Should -Match 'getppid\(\) = \d+'
        $text | Should -Match ([regex]::Escape(" > $Fixture(main+0x") + '[0-9a-f]+\) \[0x[0-9a-f]+\] \S*syscalls\.c:\d+')
    }

    It 'is an InvalidArgument error with -Engine Bpf, which cannot stop the tracee to read its stack' {
        { Start-SyscallTrace -FilePath /bin/true -Engine Bpf -StackTrace -ErrorAction Stop } |
            Should -Throw -ErrorId (Get-QualifiedId InvalidArgument Start-SyscallTrace) -ExpectedMessage '*stack traces need the tracee stopped*'
    }

    It 'reads the stacks of a service the user started, and leaves it running untraced' {
        $w = Start-Waiter   # a child of this pwsh, calling getppid every 10 ms from main
        try {
            $calls = @(Start-SyscallTrace -Id $w.Id -Syscall getppid -StackTrace -Timeout 1 | Where-Object Name -eq getppid)
            $calls.Count | Should -BeGreaterThan 10
            foreach ($c in $calls) { ($c.StackTrace | Where-Object Symbol -eq 'main').ModulePath | Should -Be $Fixture }
            Get-TracerPid $w.Id | Should -Be 0
            Get-Count $w | Should -Be 'count=0'
        } finally {
            Stop-Waiter $w
        }
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
