#Requires -Version 7.4
# Every cmdlet over PowerShell remoting, against real sshd "hosts" on 127.0.0.1 (TestSshHosts.ps1 starts
# three, each with its own port, key and name): objects that keep their properties and show in our
# views, the same through Start-Job, remote errors. Streaming from three hosts and the fleet examples
# are in Remoting.Fleet.Tests.ps1. Needs root, cc, readelf, sshd (openssh-server), ssh-keygen, setpriv.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    . (Join-Path $PSScriptRoot 'RemotingHelpers.ps1')
    Initialize-RemotingTest -Name objects
}

AfterAll {
    Clear-RemotingTest
}

Describe 'Every cmdlet through <Via>' -ForEach @(
    @{ Via = 'Invoke-Command -HostName localhost -Port N'; ComputerName = 'localhost' }
    @{ Via = 'Start-Job'; ComputerName = 'localhost' }
) {
    BeforeAll {
        $script:Service = Start-LibService $LibV1
        $script:Marker = "pslt-remote-$([guid]::NewGuid().ToString('N'))"
        $script:Loop = Start-ExecLoop $Marker
        $script:SnapshotPath = Join-Path $Work "snapshot-$($Via -replace '\W', '').core"
        $arguments = @{
            Target = $Service.Id; Core = $AbortCore; Snapshot = $SnapshotPath; Shell = $Loop.Id; Marker = $Marker
            Fingerprint = $FingerprintScript
        }
        # What runs there: each cmdlet once, then the JSON of every object as that side saw it.
        $block = {
            param($p, $modulePath)
            if ($modulePath) { Import-Module $modulePath }   # a job's pwsh does not have our PSModulePath
            $fingerprint = [scriptblock]::Create($p.Fingerprint)
            $objects = @(
                Get-ProcSymbol -Name pslt_lib_function, pslt_lib_global -Path 'libpslt_fleet.so' -Id $p.Target
                Read-CoreDump -Path $p.Core
                Save-ProcessSnapshot -Id $p.Target -Path $p.Snapshot -Force
                Start-SyscallTrace -FilePath /bin/echo -ArgumentList $p.Marker, 'two words'   # its output must not reach the session
                Watch-Exec -Name true -ParentId $p.Shell -Count 2 -Timeout 30
                Get-ProcessStack -Id $p.Target
            )
            $objects
            [pscustomobject]@{ Fingerprints = [string[]]@($objects | ForEach-Object { & $fingerprint $_ }) }
        }
        if ($Via -like 'Invoke-Command*') {
            $h = $SshHosts[0]
            $script:Results = @(Invoke-Command -HostName localhost -Port $h.Port -UserName root -KeyFilePath $h.KeyFilePath -Options $h.Options -ScriptBlock $block -ArgumentList $arguments, $null)
        } else {
            $script:Results = @(Start-Job -ScriptBlock $block -ArgumentList $arguments, (Resolve-Path $ModulePath).Path | Receive-Job -Wait -AutoRemoveJob)
        }
        $script:Objects = $Results[0..($Results.Count - 2)]
        $script:Fingerprints = $Results[-1].Fingerprints
        function Get-Output([string] $Type) { @($Objects | Where-Object { $_.PSObject.TypeNames -contains "Deserialized.PSLinuxTrace.Engine.Model.$Type" }) }
    }

    AfterAll {
        Stop-LibService $Service
        Stop-ExecLoop $Loop
        Remove-Item $SnapshotPath -ErrorAction Ignore
    }

    It 'returns every cmdlet''s objects as deserialized module types, each with its PSComputerName' {
        foreach ($type in 'ProcSymbol', 'CoreDump', 'ProcessSnapshot', 'SyscallEvent', 'ExecEvent', 'ProcessStack') { Get-Output $type | Should -Not -BeNullOrEmpty -Because "$type came back" }
        foreach ($o in $Objects) {
            $o.PSObject.TypeNames[0] | Should -BeLike 'Deserialized.PSLinuxTrace.Engine.Model.*'
            $o.PSComputerName | Should -Be $ComputerName
        }
    }

    It 'keeps every property of every object, at every depth (the same JSON here as there)' {
        $Fingerprints | Should -HaveCount $Objects.Count
        for ($i = 0; $i -lt $Objects.Count; $i++) { Get-Fingerprint $Objects[$i] | Should -Be $Fingerprints[$i] }
    }

    It 'Get-ProcSymbol: exact UInt64 addresses, the ones the program got from dlsym, and the build-id readelf reads' {
        $symbols = Get-Output ProcSymbol
        $symbols | Should -HaveCount 2
        foreach ($s in $symbols) {
            $s.Address | Should -BeOfType [UInt64]
            $s.Address | Should -Be $Service.Addresses[$s.Name]
            $s.BuildId | Should -Be (Get-ReadelfBuildId $LibV1)
            $s.Pid | Should -Be $Service.Id
        }
    }

    It 'Read-CoreDump: threads with their frames and registers, as Read-CoreDump reads the core here' {
        $core = Get-Output CoreDump | Select-Object -First 1
        $local = Read-CoreDump -Path $AbortCore
        $core.Threads | Should -HaveCount $local.Threads.Count
        for ($t = 0; $t -lt $local.Threads.Count; $t++) {
            $core.Threads[$t].Tid | Should -Be $local.Threads[$t].Tid
            $core.Threads[$t].Registers.Rip | Should -BeOfType [UInt64]
            $core.Threads[$t].Registers.Rip | Should -Be $local.Threads[$t].Registers.Rip
            @($core.Threads[$t].Frames.Symbol) | Should -Be @($local.Threads[$t].Frames.Symbol)
            @($core.Threads[$t].Frames.InstructionPointer) | Should -Be @($local.Threads[$t].Frames.InstructionPointer)
        }
        $core.CrashingThread.Tid | Should -Be $local.CrashingThread.Tid
        $core.Signal | Should -Be 'SIGABRT'
        # Properties cross the wire, methods do not: read memory where the core is (see about_PSLinuxTrace).
        $core.PSObject.Methods['ReadMemory'] | Should -BeNullOrEmpty
    }

    It 'Save-ProcessSnapshot: the core it wrote there opens here, with the process and threads it reported' {
        $snapshot = Get-Output ProcessSnapshot | Select-Object -First 1
        $snapshot.Path | Should -Be $SnapshotPath
        $snapshot.PausedFor | Should -BeOfType [TimeSpan]
        $core = Read-CoreDump -Path $SnapshotPath
        $core.Pid | Should -Be $Service.Id
        $core.Threads | Should -HaveCount $snapshot.Threads
        $core.Producer | Should -Be 'PSLinuxTrace'
    }

    It 'Start-SyscallTrace: every event, raw registers exact, arguments as a list and as strace text; the program''s output kept off the session' {
        $events = @($Objects | Where-Object { $_.PSObject.TypeNames -contains 'Deserialized.PSLinuxTrace.Engine.Model.TraceEvent' })
        @($events.EventType | Sort-Object -Unique) | Should -Be @('ProcessExit', 'ProcessStart', 'Syscall')   # enums arrive as their names
        $execve = $events | Where-Object Name -eq 'execve' | Select-Object -First 1
        $execve.RawArguments | Should -HaveCount 6
        foreach ($r in $execve.RawArguments) { $r | Should -BeOfType [UInt64] }
        $write = $events | Where-Object { $_.Name -eq 'write' -and $_.Arguments[1] -like '"pslt-remote-*' }   # as long as -StringLimit shows
        $write.Arguments[0] | Should -Be '1</dev/null>'   # no console there: stdout was /dev/null
        $write.Arguments.ToString() | Should -Be ($write.Arguments -join ', ')
        $write.Line | Should -Be "write($($write.Arguments.ToString())) = $($write.ReturnValue)"
        ($events | Where-Object EventType -eq 'ProcessExit').Result | Should -Contain '0'
    }

    It 'Watch-Exec: the execs of a loop, argv as an array, the parent it ran under' {
        $execs = Get-Output ExecEvent
        $execs | Should -HaveCount 2
        foreach ($e in $execs) {
            @($e.Argv) | Should -Be @('/bin/true', $Marker)
            $e.ParentId | Should -Be $Loop.Id
            $e.CgroupId | Should -BeOfType [UInt64]
        }
    }

    It 'is shown by the module''s views, as the live objects are' {
        $core = Get-Output CoreDump | Select-Object -First 1
        $views = @(
            @{ Object = Get-Output ProcSymbol; Header = 'Pid\s+ProcessName\s+Name\s+Address\s+Kind\s+ModulePath'; Row = '0x[0-9a-f]+\s+Function' }
            @{ Object = $core; Header = 'CrashedIn\s+: #0 0x[0-9a-f]{16} in \S+'; Row = 'Signal\s+: SIGABRT \(6\)' }
            @{ Object = $core.Threads; Header = 'Tid\s+Crashed\s+Signal\s+Rip\s+Frames\s+Top'; Row = '0x[0-9a-f]+\s+\d+ \S+' }
            @{ Object = $core.CrashingThread.Frames; Header = '#\s+Kind\s+InstructionPointer\s+Function\s+ModulePath'; Row = '0x[0-9a-f]{16}' }
            @{ Object = $core.CrashingThread.Registers; Header = 'Rip\s+: 0x[0-9a-f]+'; Row = 'FsBase\s+: 0x[0-9a-f]+' }
            @{ Object = $core.Mappings; Header = 'Start\s+End\s+Perm\s+FileOffset\s+InCore\s+Path'; Row = '0x[0-9a-f]+\s+0x[0-9a-f]+\s+r' }
            @{ Object = $core.Auxv; Header = 'Name\s+Value'; Row = 'AT_ENTRY\s+0x[0-9a-f]+' }
            @{ Object = $core.BuildIds; Header = 'LoadBias\s+Matches\s+BuildId\s+Path'; Row = '0x[0-9a-f]+\s+True' }
            @{ Object = Get-Output ProcessSnapshot; Header = 'Pid\s+Threads\s+MemoryMiB\s+PausedMs\s+TotalMs\s+Method'; Row = 'CloneTwin|WriteTracked' }
            @{ Object = @($Objects | Where-Object { $_.PSObject.TypeNames -contains 'Deserialized.PSLinuxTrace.Engine.Model.TraceEvent' }); Header = 'Tid\s+Event\s+Duration'; Row = 'execve\("/bin/echo"' }
            @{ Object = Get-Output ExecEvent; Header = 'Time\s+Pid\s+PPid\s+Uid\s+Result\s+CommandLine'; Row = "/bin/true $Marker" }
        )
        foreach ($v in $views) {
            $text = $v.Object | Out-String -Width 250
            $text | Should -Match $v.Header -Because "the view of $($v.Object[0].PSObject.TypeNames[0])"
            $text | Should -Match $v.Row
        }
        # One table for the whole event stream, as for live events.
        $events = @($Objects | Where-Object { $_.PSObject.TypeNames -contains 'Deserialized.PSLinuxTrace.Engine.Model.TraceEvent' })
        ([regex]::Matches(($events | Out-String -Width 250), '(?m)^\s*Tid\s+Event\s+Duration')).Count | Should -Be 1
    }

    It 'Get-ProcessStack: every thread with its frames (as Read-CoreDump''s), as Get-ProcessStack reads the process here' {
        $stack = Get-Output ProcessStack | Select-Object -First 1
        $local = Get-ProcessStack -Id $Service.Id
        $stack.Pid | Should -Be $Service.Id
        $stack.PausedFor | Should -BeOfType [TimeSpan]
        $stack.Threads | Should -HaveCount $local.Threads.Count
        for ($t = 0; $t -lt $local.Threads.Count; $t++) {
            $stack.Threads[$t].PSObject.TypeNames[0] | Should -Be 'Deserialized.PSLinuxTrace.Engine.Model.CoreThread'
            $stack.Threads[$t].Frames[0].PSObject.TypeNames[0] | Should -Be 'Deserialized.PSLinuxTrace.Engine.Model.StackFrame'
            # The service waits in read(): its stack is the same now as when the host read it.
            @($stack.Threads[$t].Frames.Symbol) | Should -Be @($local.Threads[$t].Frames.Symbol)
            @($stack.Threads[$t].Frames.InstructionPointer) | Should -Be @($local.Threads[$t].Frames.InstructionPointer)
            $stack.Threads[$t].Registers.Rip | Should -BeOfType [UInt64]
        }
        ($stack | Out-String -Width 200) | Should -Match "(?m)^PID $($Service.Id) - symlib_main \(\d+ threads?, paused [\d.]+ ms\)"
        ($stack | Format-Table -View Summary | Out-String -Width 200) | Should -Match "\b$($Service.Id)\b"
        Assert-Untraced $Service.Id
    }
}

Describe 'Remote errors' {
    BeforeAll {
        $script:Service = Start-LibService $LibV1
        $script:Missing = 999999999
        # Each case once here and once on every host; Watch-Exec -ContainerOf's is terminating (bad setup), so it runs last.
        $script:ErrorCases = [ordered]@{
            'Get-ProcSymbol'       = { param($id) Get-ProcSymbol -Name malloc -Id $id }
            'Start-SyscallTrace'   = { param($id) Start-SyscallTrace -Id $id -Timeout 1 -Engine Ptrace }
            'Save-ProcessSnapshot' = { param($id) Save-ProcessSnapshot -Id $id -Path "/tmp/pslt-remote-$id-$PID.core" }
            'Read-CoreDump'        = { param($id) Read-CoreDump -Path "/tmp/pslt-remote-$id-$PID.core" }
            'Watch-Exec'           = { param($id) Watch-Exec -ContainerOf $id -Timeout 1 }
        }
        # Runs the cases in one script there; errors as (command, id, category, host) rows.
        function Invoke-ErrorCase([object] $Session, [int] $Id, [string[]] $Name) {
            $texts = @($Name | ForEach-Object { $ErrorCases[$_].ToString() })
            $errors = $null
            Invoke-Command -Session $Session -ArgumentList $Id, $texts -ErrorVariable errors -ErrorAction SilentlyContinue {
                param($id, $texts)
                foreach ($t in $texts) { & ([scriptblock]::Create($t)) $id }
                'still running'   # reached only if every error was non-terminating
            } | Should -Not -BeNullOrEmpty
            $errors | ForEach-Object { [pscustomobject]@{ Id = $_.FullyQualifiedErrorId; Category = $_.CategoryInfo.Category; Host = $_.OriginInfo.PSComputerName } }
        }
        function Get-LocalError([string] $Name, [int] $Id) {
            try { $e = @(& $ErrorCases[$Name] $Id 2>&1 | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }) } catch { $e = @($_) }
            $e | Should -HaveCount 1 -Because "$Name fails here too"
            [pscustomobject]@{ Id = $e[0].FullyQualifiedErrorId; Category = $e[0].CategoryInfo.Category }
        }
    }

    AfterAll { Stop-LibService $Service }

    It 'a missing pid or file there is a non-terminating error with the id and category it has here, tagged with the host' {
        $names = @($ErrorCases.Keys | Where-Object { $_ -ne 'Watch-Exec' })
        $rows = @(Invoke-ErrorCase $Fleet $Missing $names)
        $rows | Should -HaveCount ($names.Count * $Fleet.Count)
        foreach ($name in $names) {
            $local = Get-LocalError $name $Missing
            $local.Id | Should -BeLike "*,PSLinuxTrace.Commands.$($name -replace '-', '')Command"
            $mine = @($rows | Where-Object Id -eq $local.Id)
            $mine | Should -HaveCount $Fleet.Count -Because "$name fails the same way on every host"
            $mine.Category | Sort-Object -Unique | Should -Be $local.Category
            @($mine.Host | Sort-Object) | Should -Be @($Fleet.ComputerName)
        }
        Get-ChildItem /tmp -Filter "pslt-remote-$Missing-*" | Should -BeNullOrEmpty   # a failed snapshot leaves no file
    }

    It 'a terminating error there (Watch-Exec''s bad -ContainerOf) comes back as an error of that host, and the session lives on' {
        $errors = $null
        Invoke-Command -Session $Fleet[0] -ErrorVariable errors -ErrorAction SilentlyContinue { Watch-Exec -ContainerOf 999999999 -Timeout 1 }
        $local = Get-LocalError 'Watch-Exec' $Missing
        $errors | Should -HaveCount 1
        $errors[0].FullyQualifiedErrorId | Should -Be $local.Id
        $errors[0].CategoryInfo.Category | Should -Be $local.Category
        $errors[0].OriginInfo.PSComputerName | Should -Be $Fleet[0].ComputerName
        Invoke-Command -Session $Fleet[0] { 'alive' } | Should -Be 'alive'
    }

    It 'pid 1''s capability refusal there is the PermissionDenied it is here' {
        $names = 'Get-ProcSymbol', 'Start-SyscallTrace', 'Save-ProcessSnapshot'
        $rows = @(Invoke-ErrorCase $Fleet 1 $names)
        foreach ($name in $names) {
            $local = Get-LocalError $name 1
            $local.Id | Should -Be (Get-QualifiedId PermissionDenied $name)
            $mine = @($rows | Where-Object Id -eq $local.Id)
            $mine | Should -HaveCount $Fleet.Count
            $mine.Category | Sort-Object -Unique | Should -Be 'PermissionDenied'
        }
        Get-ChildItem /tmp -Filter 'pslt-remote-1-*' | Should -BeNullOrEmpty
    }

    It 'a session without capabilities gets PermissionDenied from every cmdlet that needs them, with the reason' {
        $s = New-TestSshSession $SshHosts[1] -Subsystem powershell-nocaps
        try {
            Invoke-Command -Session $s { (Get-Content /proc/self/status | Where-Object { $_ -like 'CapEff:*' }) -replace '\s+', ' ' } | Should -Be 'CapEff: 0000000000000000'
            $errors = $null
            Invoke-Command -Session $s -ArgumentList $Service.Id -ErrorVariable errors -ErrorAction SilentlyContinue {
                param($id)
                Get-ProcSymbol -Name pslt_lib_function -Id $id
                Start-SyscallTrace -Id $id -Timeout 1
                Save-ProcessSnapshot -Id $id -Path "/tmp/pslt-nocaps-$id.core"
                Watch-Exec -Timeout 1
            }
            @($errors.FullyQualifiedErrorId) | Should -Be @('Get-ProcSymbol', 'Start-SyscallTrace', 'Save-ProcessSnapshot', 'Watch-Exec' | ForEach-Object { Get-QualifiedId PermissionDenied $_ })
            foreach ($e in $errors) {
                $e.CategoryInfo.Category | Should -Be 'PermissionDenied'
                $e.OriginInfo.PSComputerName | Should -Be $SshHosts[1].Name
                $e.Exception.Message | Should -Match 'CAP_'   # the reason names the capability
            }
            Assert-Untraced $Service.Id
        } finally { Remove-PSSession $s }
    }
}
