#Requires -Version 7.4
# The fault campaign of issue 17 at CI counts (bench/faults/run.sh runs the same functions at full counts):
# snapshots in a row, the target killed mid-operation, a full disk, pwsh killed mid-trace, Watch-Exec
# cycles, an exec storm and a syscall flood. Each verifies the target after every fault and what the session
# holds at the end (tests/Pester/FaultChecks.ps1). Needs root, cc (with static libc), bpftool, mount.
BeforeAll {
    . (Join-Path $PSScriptRoot 'FaultCampaign.ps1')
    Initialize-FaultCampaign

    function Assert-Survived($Result) {
        $Result.Failures | Should -BeNullOrEmpty -Because $Result.Fault
        $Result.Leaks | Should -BeNullOrEmpty -Because $Result.Fault
        $Result.Survived | Should -Be $Result.Count
    }
}

AfterAll { Remove-FaultCampaign }

Describe 'Fault campaign' {
    It 'survives snapshots in a row with -Method <Method> (churn: <Churn>)' -ForEach @(
        @{ Method = 'Auto'; Churn = $false }, @{ Method = 'CloneTwin'; Churn = $false }, @{ Method = 'WriteTracked'; Churn = $false }
        @{ Method = 'CloneTwin'; Churn = $true }, @{ Method = 'WriteTracked'; Churn = $true }
    ) {
        Assert-Survived (Invoke-SnapshotFault -Count 2 -Method $Method -Churn:$Churn)
    }

    It 'gives ProcessNotFound and leaves nothing when the target is killed during <Operation>' -ForEach @(
        @{ Operation = 'Trace' }, @{ Operation = 'Snapshot' }, @{ Operation = 'Stack' }
    ) {
        Assert-Survived (Invoke-KillFault -Count 4 -Operation $Operation)
    }

    It 'gives DiskFull (WriteError), removes the partial core and leaves the target running on a full disk' {
        Assert-Survived (Invoke-DiskFullFault -Count 2)
    }

    # Regression: the eBPF engine's launched program outlived a pwsh killed by SIGKILL (no PTRACE_O_EXITKILL there).
    It 'leaves an attached target running untraced and kills a launched one when pwsh is killed (-Engine <Engine>)' -ForEach @(
        @{ Engine = 'Ptrace' }, @{ Engine = 'Bpf' }
    ) {
        Assert-Survived (Invoke-PwshKillFault -Count 2 -Engine $Engine)
    }

    It 'returns to the BPF objects and fds it started with after Watch-Exec cycles' {
        Assert-Survived (Invoke-WatchCycleFault -Count 4)
    }

    It 'writes every exec of a storm or counts what it lost' {
        $r = Invoke-ExecStormFault -Rate 10000 -Seconds 2
        Assert-Survived $r
        $r.Detail | Should -Match 'execs=[1-9]'
    }

    It 'delivers 200k syscall events (or counts the lost) with flat memory (-Engine <Engine>)' -ForEach @(
        @{ Engine = 'Bpf' }, @{ Engine = 'Ptrace' }
    ) {
        Assert-Survived (Invoke-SyscallVolumeFault -Events 200000 -Engine $Engine)
    }
}
