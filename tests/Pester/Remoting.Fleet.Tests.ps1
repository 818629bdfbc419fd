#Requires -Version 7.4
# The module across three real sshd hosts (TestSshHosts.ps1): events streamed from all of them at once
# (Invoke-Command -AsJob) and stopped by Stop-Job, by the local pipeline and by Ctrl+C with nothing left
# behind, and the fleet triage examples of about_PSLinuxTrace as written there. The hosts run on this
# machine, so what a host left (BPF fds of its pwsh, tracers, traced or stopped processes) is checked
# here directly. Needs root, cc, readelf, sshd (openssh-server), ssh-keygen.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'RemotingHelpers.ps1')
    Initialize-RemotingTest -Name fleet

    # Receives a job's output until every host has sent some (or the timeout); the objects, in arrival order.
    function Receive-UntilEveryHost($Job, [double] $TimeoutSeconds = 60) {
        $got = [System.Collections.Generic.List[object]]::new()
        Wait-Until -TimeoutSeconds $TimeoutSeconds -What 'output from every host' {
            foreach ($o in @(Receive-Job $Job)) { $got.Add($o) }
            @($got.PSComputerName | Sort-Object -Unique).Count -eq $Fleet.Count -or $Job.State -ne 'Running'
        } | Out-Null
        , $got
    }
    function Get-HostValue([scriptblock] $Make) { $map = @{}; foreach ($s in $Fleet) { $map[$s.ComputerName] = & $Make $s.ComputerName }; $map }
    function Assert-NothingLeft {
        Wait-Until -TimeoutSeconds 15 -What 'the hosts to end their tracers and launched programs' { -not (Get-HostLeftover) } | Out-Null
        foreach ($s in $Fleet) { Invoke-Command -Session $s { $PID } | Should -Be $FleetPid[$s.ComputerName] }   # the sessions live on
    }
}

AfterAll {
    Clear-RemotingTest
}

Describe 'Streaming from three hosts' {
    It 'Watch-Exec -AsJob: each host''s execs arrive while the job runs, merged; Stop-Job releases every BPF object' {
        $loops = Get-HostValue { param($h) Start-ExecLoop "pslt-$h-$([guid]::NewGuid().ToString('N'))" }
        try {
            Set-FleetVariable $Fleet Loop (Get-HostValue { param($h) $loops[$h].Id })
            $before = Get-HostValue { param($h) Get-BpfFdCountOf $FleetPid[$h] }
            $job = Invoke-Command -Session $Fleet -AsJob { Watch-Exec -Name true -ParentId $Loop }
            try {
                $events = Receive-UntilEveryHost $job
                $job.State | Should -Be 'Running'   # no -Count, no -Timeout: these came while it ran
                $during = Get-HostValue { param($h) Get-BpfFdCountOf $FleetPid[$h] }
            } finally { Stop-Job $job }
            $job.State | Should -Be 'Stopped'
            foreach ($h in $loops.Keys) {
                $mine = @($events | Where-Object PSComputerName -eq $h)
                $mine | Should -Not -BeNullOrEmpty -Because "$h streamed"
                foreach ($e in $mine) { $e.ParentId | Should -Be $loops[$h].Id; $e.Argv[0] | Should -Be '/bin/true' }
                $during[$h] | Should -BeGreaterThan $before[$h] -Because "$h's pwsh held the watch's programs, maps and links"
            }
            $events += @(Receive-Job $job)
            Remove-Job $job
            # Every host let go of every program, map, link and perf event (its pwsh lives on: a session).
            Wait-Until -TimeoutSeconds 10 -What 'the BPF fds to close' { @($loops.Keys | Where-Object { (Get-BpfFdCountOf $FleetPid[$_]) -ne $before[$_] }).Count -eq 0 } | Out-Null
            Assert-NothingLeft
        } finally { foreach ($l in $loops.Values) { Stop-ExecLoop $l } }
    }

    It 'Start-SyscallTrace -AsJob: each host''s trace streams while the job runs; Stop-Job leaves no traced or stopped thread and no tracer' {
        $targets = Get-HostValue { param($h) Start-BusyLoop }
        try {
            Set-FleetVariable $Fleet Target (Get-HostValue { param($h) $targets[$h].Id })
            $job = Invoke-Command -Session $Fleet -AsJob { Start-SyscallTrace -Id $Target -Engine Ptrace }
            try {
                $events = Receive-UntilEveryHost $job
                $job.State | Should -Be 'Running'
                foreach ($t in $targets.Values) { Get-ProcStatusField $t.Id TracerPid | Should -Not -Be '0' }
            } finally { Stop-Job $job }
            Remove-Job $job
            foreach ($h in $targets.Keys) {
                $mine = @($events | Where-Object PSComputerName -eq $h)
                $mine | Should -Not -BeNullOrEmpty
                $mine[0].Pid | Should -Be $targets[$h].Id   # the attach of that host's own target comes first
            }
            Assert-NothingLeft
            foreach ($t in $targets.Values) {
                Assert-Untraced $t.Id
                foreach ($child in Get-ChildId $t.Id) { try { Assert-Untraced $child } catch [System.Management.Automation.ItemNotFoundException] { } }
            }
        } finally { foreach ($t in $targets.Values) { Stop-ExecLoop $t } }
    }

    It 'stopping the local pipeline (what Ctrl+C does) stops the watches there and releases their BPF objects' {
        $loops = Get-HostValue { param($h) Start-ExecLoop "pslt-stop-$([guid]::NewGuid().ToString('N'))" }
        $ps = [powershell]::Create()
        try {
            Set-FleetVariable $Fleet Loop (Get-HostValue { param($h) $loops[$h].Id })
            $before = Get-HostValue { param($h) Get-BpfFdCountOf $FleetPid[$h] }
            $null = $ps.AddScript({ param($fleet) Invoke-Command -Session $fleet { Watch-Exec -Name true -ParentId $Loop } }).AddArgument($Fleet)
            $out = [System.Management.Automation.PSDataCollection[psobject]]::new()
            $null = $ps.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]::new(), $out)
            # (Enumerating a PSDataCollection waits for its end: index it.)
            Wait-Until -TimeoutSeconds 60 -What 'events from every host' {
                $names = for ($i = 0; $i -lt $out.Count; $i++) { $out[$i].PSComputerName }
                @($names | Sort-Object -Unique).Count -eq $Fleet.Count
            } | Out-Null
            $ps.Stop()   # the console host's Ctrl+C handler stops the running pipeline the same way
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            Wait-Until -TimeoutSeconds 10 -What 'the BPF fds to close' { @($loops.Keys | Where-Object { (Get-BpfFdCountOf $FleetPid[$_]) -ne $before[$_] }).Count -eq 0 } | Out-Null
            Assert-NothingLeft
        } finally { $ps.Dispose(); foreach ($l in $loops.Values) { Stop-ExecLoop $l } }
    }

    It 'Select-Object -First inside the script block stops each host''s watch there (after Invoke-Command it would wait for the end)' {
        $loops = Get-HostValue { param($h) Start-ExecLoop "pslt-first-$([guid]::NewGuid().ToString('N'))" }
        try {
            Set-FleetVariable $Fleet Loop (Get-HostValue { param($h) $loops[$h].Id })
            $before = Get-HostValue { param($h) Get-BpfFdCountOf $FleetPid[$h] }
            $first = @(Invoke-Command -Session $Fleet { Watch-Exec -Name true -ParentId $Loop | Select-Object -First 2 })
            $first | Should -HaveCount (2 * $Fleet.Count)
            foreach ($h in $loops.Keys) { @($first | Where-Object PSComputerName -eq $h) | Should -HaveCount 2 }
            foreach ($h in $loops.Keys) { Get-BpfFdCountOf $FleetPid[$h] | Should -Be $before[$h] }
            Assert-NothingLeft
        } finally { foreach ($l in $loops.Values) { Stop-ExecLoop $l } }
    }

    It 'Ctrl+C in the local pwsh stops the traces on every host and kills the programs they launched' {
        # A pwsh of its own runs the fan-out (no sessions: each host's pwsh ends with it) and says when every host streams.
        $names = @($SshHosts | ForEach-Object { "root@$($_.Name):$($_.Port)" })
        $options = ($SshHosts[0].Options.GetEnumerator() | ForEach-Object { "'$($_.Key)' = '$($_.Value)'" }) -join '; '
        $script = @"
Import-Module '$((Resolve-Path $ModulePath).Path)'
`$seen = @{}
Invoke-Command -HostName '$($names -join "','")' -KeyFilePath '$($SshHosts[0].KeyFilePath)' -Options @{ $options } {
    Start-SyscallTrace -FilePath /bin/sh -ArgumentList '-c', 'while :; do sleep 0.1; done'
} | ForEach-Object { if (-not `$seen[`$_.PSComputerName]) { `$seen[`$_.PSComputerName] = 1; if (`$seen.Count -eq 3) { [Console]::Out.WriteLine('streaming') } } }
[Console]::Out.WriteLine('not stopped')
"@
        $command = Get-PwshCommandLine
        $psi = [System.Diagnostics.ProcessStartInfo]::new($command[0])
        foreach ($a in @($command | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardInput = $true
        $local = [System.Diagnostics.Process]::Start($psi)
        try {
            $read = $local.StandardOutput.ReadLineAsync()
            $read.Wait(60000) | Out-Null
            $read.Result | Should -Be 'streaming'
            $launched = @(Get-HostLeftover | Where-Object { $_ -like '* sh' })
            $launched | Should -HaveCount 3   # one traced shell per host
            & /bin/kill -INT $local.Id
            $local.WaitForExit(20000) | Should -BeTrue
            $local.StandardOutput.ReadToEnd() | Should -Not -Match 'not stopped'
            Assert-NothingLeft   # their pwsh, tracers and shells are gone
        } finally { if (-not $local.HasExited) { $local.Kill() } }
    }
}

Describe 'Fleet triage (the examples of about_PSLinuxTrace)' {
    BeforeAll {
        # Two hosts run build 1 of the library, the third build 2.
        $script:Services = Get-HostValue { param($h) Start-LibService $(if ($h -eq 'pslt-host3') { $LibV2 } else { $LibV1 }) }
        Set-FleetVariable $Fleet Service (Get-HostValue { param($h) $Services[$h].Id })
    }

    AfterAll { foreach ($s in $Services.Values) { Stop-LibService $s } }

    It 'reads the cores on every host and groups them here by crash signature' {
        $cores = Invoke-Command -Session $Fleet { Get-ChildItem -Path $CrashDir -Filter 'core*' | Read-CoreDump }
        $groups = @($cores | Group-Object Signature | Sort-Object Count -Descending)
        $table = @($groups | Select-Object Count, @{ n = 'Hash'; e = { $_.Group[0].SignatureHash } }, @{ n = 'Hosts'; e = { ($_.Group.PSComputerName | Sort-Object -Unique) -join ', ' } })
        @($table | ForEach-Object Count) | Should -Be @(2, 1)
        @($table.Hosts) | Should -Be @('pslt-host1, pslt-host2', 'pslt-host3')
        $groups[0].Name | Should -BeLike 'SIGSEGV|*pslt_crash_here|*'   # the same crash of the same build on two hosts
        $groups[1].Name | Should -BeLike 'SIGABRT|*'
        # The same cores read here, grouped the same way: the same signatures and hashes.
        $here = @(Get-ChildItem -Path @($CrashDir.Values) -Filter 'core*' | Read-CoreDump | Group-Object Signature | Sort-Object Count -Descending)
        @($groups.Name) | Should -Be @($here.Name)
        @($table.Hash) | Should -Be @($here | ForEach-Object { $_.Group[0].SignatureHash })
        $groups[0].Group[0].CrashingThread.Frames[0].Symbol | Should -Be 'pslt_crash_here'
    }

    It 'reads a core''s memory where the core is (methods do not cross the wire)' {
        $s = $Fleet | Where-Object ComputerName -eq 'pslt-host3'
        $there = Invoke-Command -Session $s { $c = Get-ChildItem -Path $CrashDir -Filter 'core*' | Read-CoreDump; $c.ReadPointer($c.CrashingThread.Registers.Rsp) }
        $here = Read-CoreDump -Path $AbortCore
        $there | Should -BeOfType [UInt64]
        $there | Should -Be $here.ReadPointer($here.CrashingThread.Registers.Rsp)
    }

    It 'snapshots a process on one host and copies the core here (Copy-Item -FromSession)' {
        $s = $Fleet | Where-Object ComputerName -eq 'pslt-host2'
        $snapshot = Invoke-Command -Session $s { Get-Process -Id $Service | Save-ProcessSnapshot -Path (Join-Path $CrashDir 'service.snapshot') -Force }
        try {
            $snapshot.PSComputerName | Should -Be 'pslt-host2'
            $copy = Join-Path $Work 'pslt-host2-service.core'
            Copy-Item -FromSession $s -Path $snapshot.Path -Destination $copy
            (Get-FileHash $copy).Hash | Should -Be (Get-FileHash (Join-Path $CrashDir['pslt-host2'] 'service.snapshot')).Hash
            $core = Read-CoreDump -Path $copy
            $core.Pid | Should -Be $Services['pslt-host2'].Id
            $core.Threads | Should -HaveCount $snapshot.Threads
            # readelf sees one NT_PRSTATUS note per thread.
            @(& readelf -n $copy | Where-Object { $_ -match '\bNT_PRSTATUS\b' }) | Should -HaveCount $snapshot.Threads
            Assert-Untraced $Services['pslt-host2'].Id
        } finally { Remove-Item (Join-Path $CrashDir['pslt-host2'] 'service.snapshot') -ErrorAction Ignore }
    }

    It 'finds the host that runs another build of a library (Get-ProcSymbol grouped by build-id)' {
        $symbols = Invoke-Command -Session $Fleet { Get-Process -Id $Service | Get-ProcSymbol -Name pslt_lib_function -Path 'libpslt_fleet.so' }
        $builds = @($symbols | Group-Object BuildId | Sort-Object Count -Descending)
        $builds | Should -HaveCount 2
        $table = @($builds | Select-Object Count, Name, @{ n = 'Hosts'; e = { $_.Group.PSComputerName | Sort-Object -Unique } })
        @($table[1].Hosts) | Should -Be @('pslt-host3')
        $builds[0].Name | Should -Be (Get-ReadelfBuildId $LibV1)
        $builds[1].Name | Should -Be (Get-ReadelfBuildId $LibV2)
        @($builds[1].Group.PSComputerName) | Should -Be @('pslt-host3')
        foreach ($sym in $symbols) { $sym.Address | Should -Be $Services[$sym.PSComputerName].Addresses['pslt_lib_function'] }
    }
}
