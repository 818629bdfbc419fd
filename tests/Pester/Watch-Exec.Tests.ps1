#Requires -Version 7.4
# Watch-Exec from a user's chair: start a watch, run known programs while it runs, and check what
# comes out against what we ran. Needs root (CAP_BPF + CAP_PERFMON), /bin/sh, unshare and bpftool.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '..' '..' 'out' 'PSLinuxTrace' 'PSLinuxTrace.psd1') -Force

    # Runs a shell command in the background after a delay, so that it execs while Watch-Exec runs.
    function Start-Later([string] $Command, [int] $DelaySeconds = 2) {
        Start-Process -FilePath /bin/sh -ArgumentList '-c', "sleep $DelaySeconds; $Command" -PassThru
    }
}

Describe 'Watch-Exec' {
    It 'writes the exec of a known command with its argv, parent and result' {
        $marker = "pslt-$([guid]::NewGuid().ToString('N'))"
        $sh = Start-Later "/bin/echo $marker 'two words' > /dev/null; exit 0"   # exit 0: echo runs in a forked child of sh
        $e = Watch-Exec -Name echo -Timeout 30 | Where-Object { $_.Argv -contains $marker } | Select-Object -First 1
        $e | Should -Not -BeNullOrEmpty
        $e.Filename | Should -Be '/bin/echo'
        $e.Argv | Should -Be @('/bin/echo', $marker, 'two words')
        $e.ParentId | Should -Be $sh.Id
        $e.Result | Should -Be '0'
        $e.CommandLine | Should -Be "/bin/echo $marker 'two words'"
        $e.PSObject.TypeNames[0] | Should -Be 'PSLinuxTrace.Engine.Model.ExecEvent'
    }

    It 'groups a minute of execs by program (-ParentId filters in the kernel)' {
        # dash forks for every command but a final exec; "exit 0" keeps the last one forked too.
        $sh = Start-Later '/bin/true 1; /bin/echo 2 >/dev/null; /bin/true 3; /bin/echo 4 >/dev/null; /bin/true 5; exit 0'
        $groups = Watch-Exec -ParentId $sh.Id -Name true, echo -Timeout 10 | Group-Object Filename   # not the delay's sleep
        ($groups | Where-Object Name -eq '/bin/true').Count | Should -Be 3
        ($groups | Where-Object Name -eq '/bin/echo').Count | Should -Be 2
        $groups | Should -HaveCount 2
    }

    It 'reports a failing exec with its errno name' {
        $missing = "/nonexistent-$([guid]::NewGuid().ToString('N'))"
        $null = Start-Later "$missing arg 2>/dev/null"
        $e = Watch-Exec -Name $missing -Timeout 30 -Count 1
        $e.Filename | Should -Be $missing
        $e.Result | Should -Be 'ENOENT'
        $e.ErrorCode | Should -Be 2
    }

    It 'filters by pid namespace in the kernel (-ContainerOf)' {
        $marker = "pslt-ns-$([guid]::NewGuid().ToString('N'))"
        # A shell in a new pid namespace, waiting; then it runs /bin/true with the marker.
        $outer = Start-Process -FilePath unshare -ArgumentList '-p', '-f', '/bin/sh', '-c', "sleep 3; /bin/true $marker" -PassThru
        $deadline = (Get-Date).AddSeconds(10)
        do { Start-Sleep -Milliseconds 100; $inner = (Get-Content "/proc/$($outer.Id)/task/$($outer.Id)/children" -ErrorAction Ignore) -split ' ' | Where-Object { $_ } | Select-Object -First 1 }
        until ($inner -or (Get-Date) -gt $deadline)
        $inner | Should -Not -BeNullOrEmpty
        $null = Start-Later "/bin/true outside-$marker" 1
        $events = Watch-Exec -ContainerOf $inner -Timeout 10
        ($events | Where-Object { $_.Argv -contains $marker }) | Should -HaveCount 1
        ($events | Where-Object { $_.Argv -contains "outside-$marker" }) | Should -HaveCount 0
        $ns = [uint32]((Get-Item "/proc/$inner/ns/pid").LinkTarget -replace '\D', '')
        $events | ForEach-Object { $_.PidNamespace | Should -Be $ns }
    }

    It 'stops on -Count and leaves no BPF program behind' {
        $before = (bpftool prog show -j | ConvertFrom-Json) | Where-Object name -like 'pslt_*'
        $null = Start-Later '/bin/true a; /bin/true b; /bin/true c' 1
        $events = Watch-Exec -Name true -Count 2 -Timeout 30
        $events | Should -HaveCount 2
        $after = (bpftool prog show -j | ConvertFrom-Json) | Where-Object name -like 'pslt_*'
        @($after).Count | Should -Be @($before).Count
    }

    It 'captures the environment with -IncludeEnvironment' {
        $marker = "PSLT_MARK=$([guid]::NewGuid().ToString('N'))"
        $null = Start-Later "env $marker /bin/true env-test"
        $e = Watch-Exec -Name true -IncludeEnvironment -Timeout 30 | Where-Object { $_.Argv -contains 'env-test' } | Select-Object -First 1
        $e.Environment | Should -Contain $marker
    }

    It 'rejects a buffer size that is not a power of two' {
        { Watch-Exec -BufferSize 5000 -Timeout 1 -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidArgument,PSLinuxTrace.Commands.WatchExecCommand'
    }

    It 'rejects a process that does not exist for -ContainerOf' {
        { Watch-Exec -ContainerOf 999999999 -Timeout 1 -ErrorAction Stop } | Should -Throw -ErrorId 'ProcessNotFound,PSLinuxTrace.Commands.WatchExecCommand'
    }
}
