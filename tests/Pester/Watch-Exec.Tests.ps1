#Requires -Version 7.4
# Watch-Exec from a user's chair: start a watch, run known programs while it runs, and check what
# comes out against what we ran. Needs root (CAP_BPF + CAP_PERFMON), /bin/sh and unshare. Other
# work on the machine execs too, so every check looks for a marker of its own.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-exec-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:ExecHelper = Join-Path $Work 'exec_helper'
    & cc -O0 -g -pthread -o $ExecHelper (Join-Path $FixtureSource 'exec_helper.c')
    if ($LASTEXITCODE -ne 0) { throw 'cc failed for exec_helper' }

    # Runs a shell command in the background once the watch is attached, not after a guessed delay
    # (loading the programs takes longer on a busy machine): the shell waits for its go file, which
    # Watch-ExecReady creates when Watch-Exec says its programs are attached.
    function Start-Later([string] $Command) {
        $go = Join-Path $Work "go-$([guid]::NewGuid().ToString('N'))"
        Start-Shell "while [ ! -e '$go' ]; do sleep 0.05; done; $Command" | Add-Member -NotePropertyName Go -NotePropertyValue $go -PassThru
    }

    # Watch-Exec with these parameters; starts the given Start-Later shells once its programs are attached.
    function Watch-ExecReady([object[]] $Shells, [hashtable] $Parameters) {
        Watch-Exec @Parameters -Verbose 4>&1 | ForEach-Object {
            if ($_ -isnot [System.Management.Automation.VerboseRecord]) { return $_ }
            if ($_.Message -like 'Watching execve/execveat*') { foreach ($sh in $Shells) { New-Item -ItemType File -Path $sh.Go -Force | Out-Null } }
        }
    }
}

AfterAll {
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Watch-Exec' {
    It 'writes the exec of a known command with its argv, parent and result' {
        $marker = "pslt-$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "/bin/echo $marker 'two words' > /dev/null; exit 0"   # exit 0: echo runs in a forked child of sh
        $e = Watch-ExecReady $sh @{ Name = 'echo'; Timeout = 20 } | Where-Object { $_.Argv -contains $marker } | Select-Object -First 1
        $e | Should -Not -BeNullOrEmpty
        $e.Filename | Should -Be '/bin/echo'
        $e.Argv | Should -Be @('/bin/echo', $marker, 'two words')
        $e.ParentId | Should -Be $sh.Id
        $e.Result | Should -Be '0'
        $e.CommandLine | Should -Be "/bin/echo $marker 'two words'"
        $e.PSObject.TypeNames[0] | Should -Be 'PSLinuxTrace.Engine.Model.ExecEvent'
    }

    It 'groups the execs of a script by program (-ParentId filters in the kernel)' {
        # dash forks for every command but a final exec; "exit 0" keeps the last one forked too.
        $sh = Start-Later '/bin/true 1; /bin/echo 2 >/dev/null; /bin/true 3; /bin/echo 4 >/dev/null; /bin/true 5; exit 0'
        $events = Watch-ExecReady $sh @{ ParentId = $sh.Id; Name = 'true', 'echo'; Count = 5; Timeout = 20 }   # not the waiting sleeps
        $groups = $events | Group-Object Filename
        ($groups | Where-Object Name -eq '/bin/true').Count | Should -Be 3
        ($groups | Where-Object Name -eq '/bin/echo').Count | Should -Be 2
        $groups | Should -HaveCount 2
        # In the order they ran.
        @($events | ForEach-Object { $_.Argv[1] }) | Should -Be @('1', '2', '3', '4', '5')
    }

    It 'reports a failing exec with its errno name' {
        $missing = "/nonexistent-$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "$missing arg 2>/dev/null"
        $e = Watch-ExecReady $sh @{ Name = $missing; Timeout = 20; Count = 1 }
        $e.Filename | Should -Be $missing
        $e.Result | Should -Be 'ENOENT'
        $e.ErrorCode | Should -Be 2
    }

    It 'filters by pid namespace in the kernel (-ContainerOf)' {
        $marker = "pslt-ns-$([guid]::NewGuid().ToString('N'))"
        # A shell in a new pid namespace waits until the exec outside it has run, then runs /bin/true with the marker.
        $outsideDone = Join-Path $Work "outside-$marker"
        $outer = Start-Process -FilePath unshare -ArgumentList "-p -f /bin/sh -c `"while [ ! -e '$outsideDone' ]; do sleep 0.05; done; /bin/true $marker`"" -PassThru
        $inner = Wait-Until { Get-ChildId $outer.Id | Select-Object -First 1 } -What 'the shell in the new pid namespace'
        # Read while the namespace's processes live: /proc/$inner is gone once they have exited.
        $ns = [uint32]((Get-Item "/proc/$inner/ns/pid").LinkTarget -replace '\D', '')
        $ns | Should -Not -Be ([uint32]((Get-Item "/proc/$PID/ns/pid").LinkTarget -replace '\D', ''))
        $sh = Start-Later "/bin/true outside-$marker; touch '$outsideDone'"
        # The outside exec comes before the inside one: the first of the two that the watch writes is
        # the inside one only if the kernel filtered the other out.
        $e = Watch-ExecReady $sh @{ ContainerOf = $inner; Timeout = 10 } | Where-Object { $_.Argv -contains $marker -or $_.Argv -contains "outside-$marker" } | Select-Object -First 1
        $e.Argv | Should -Contain $marker
        $e.PidNamespace | Should -Be $ns
    }

    It 'stops on -Count' {
        $marker = "pslt-count-$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "/bin/true $marker a; /bin/true $marker b; /bin/true $marker c; exit 0"
        $events = Watch-ExecReady $sh @{ Name = 'true'; ParentId = $sh.Id; Count = 2; Timeout = 20 }
        $events | Should -HaveCount 2
        @($events | ForEach-Object { $_.Argv[2] }) | Should -Be @('a', 'b')
    }

    It 'releases every BPF object when Select-Object -First 1 stops it' {
        $marker = "pslt-first-$([guid]::NewGuid().ToString('N'))"
        $before = Get-BpfFdCount
        $sh = Start-Later "/bin/true $marker; /bin/true $marker; exit 0"
        $during = $null
        $e = Watch-ExecReady $sh @{ Name = 'true'; ParentId = $sh.Id; Timeout = 20 } | ForEach-Object { $during = Get-BpfFdCount; $_ } | Select-Object -First 1
        $e.Argv | Should -Contain $marker
        $during | Should -BeGreaterThan $before   # the watch held programs, maps and links while it ran
        Get-BpfFdCount | Should -Be $before
    }

    It 'captures the environment with -IncludeEnvironment' {
        $marker = "PSLT_MARK=$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "env $marker /bin/true env-test"
        $e = Watch-ExecReady $sh @{ Name = 'true'; IncludeEnvironment = $true; Timeout = 20 } | Where-Object { $_.Argv -contains 'env-test' -and $_.Environment -contains $marker } | Select-Object -First 1
        $e.Environment | Should -Contain $marker
    }

    It 'writes an exec whose exit never comes when it is due, in time order, with the result unknown' {
        # exec_helper blockedexec makes an execve that never returns (an argv string on a page that
        # userfaultfd never fills); the execs before and after it come back at once.
        $marker = "pslt-order-$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "/bin/true $marker 1; $ExecHelper blockedexec /bin/true $marker & sleep 0.3; /bin/true $marker 3; wait"
        try {
            $took = [System.Diagnostics.Stopwatch]::StartNew()
            $events = @(Watch-ExecReady $sh @{ Name = 'true'; ParentId = $sh.Id; Timeout = 60 } | Select-Object -First 3)
            $took.Elapsed.TotalSeconds | Should -BeLessThan 30   # the blocked exec left when due, not at the end
            $events | Should -HaveCount 3
            $events[0].Argv[2] | Should -Be '1'
            $events[0].Result | Should -Be '0'
            $events[1].Argv[1] | Should -Be $marker
            $events[1].Truncated | Should -BeTrue               # its last string was unreadable
            $events[1].Result | Should -BeNullOrEmpty
            $events[2].Argv[2] | Should -Be '3'
            $events[2].Result | Should -Be '0'
            $events[1].Timestamp | Should -BeLessThan $events[2].Timestamp
            ($events[1] | Format-Table | Out-String) | Should -Match '\s\?\s+/bin/true'   # the view shows the unknown result as ?
        } finally {
            Get-ChildId $sh.Id | ForEach-Object { Stop-Process -Id $_ -Force -ErrorAction Ignore }
        }
    }

    It 'rejects a buffer size that is not a power of two' {
        { Watch-Exec -BufferSize 5000 -Timeout 1 -ErrorAction Stop } | Should -Throw -ErrorId (Get-QualifiedId InvalidArgument Watch-Exec)
    }

    It 'rejects a process that does not exist for -ContainerOf' {
        { Watch-Exec -ContainerOf 999999999 -Timeout 1 -ErrorAction Stop } | Should -Throw -ErrorId (Get-QualifiedId ProcessNotFound Watch-Exec)
        try { Watch-Exec -ContainerOf 999999999 -Timeout 1 -ErrorAction Stop } catch { $_.FullyQualifiedErrorId | Should -BeExactly 'ProcessNotFound,PSLinuxTrace.Commands.WatchExecCommand' }
    }
}
