# The campaign's faults of the user's own process and of load: pwsh killed mid-trace, Watch-Exec started and
# stopped again and again, an exec storm, millions of syscall events. Dot-sourced by FaultCampaign.ps1.

# A child pwsh traces a target with one engine (Attach: our checksum fixture; Launch: one it starts) and is
# killed with SIGKILL at a random point of the trace. Ptrace: the tracer process sees its socket close; an
# attached target must run on, untraced, and a launched one must die (PTRACE_O_EXITKILL). The orphaned tracer
# exits; pid 1 of these VMs does not reap orphans, so its zombie stays (counted in the detail, not a failure).
# Bpf: the programs go with the pwsh's fds; the launched program is pwsh's own child, killed with it or not.
function Invoke-PwshKillFault([int] $Count, [ValidateSet('Bpf', 'Ptrace')] [string] $Engine = 'Ptrace') {
    $script = Join-Path $FaultWork 'trace-child.ps1'
    Set-Content -Path $script -Value @'
param($Mode, $Target, $Module, $Program, $Engine)
Import-Module $Module
if ($Mode -eq 'Attach') { Start-SyscallTrace -Id $Target -Engine $Engine | Out-Null }
else { Start-SyscallTrace -FilePath $Program -ArgumentList 1, service -Engine $Engine | Out-Null }
'@
    $pwsh = @(Get-PwshCommandLine)
    $failures = [System.Collections.Generic.List[string]]::new()
    $survived = 0; $zombies = 0
    $target = Start-Checksum 2
    try {
        for ($i = 0; $i -lt $Count; $i++) {
            $mode = ('Attach', 'Launch')[$i % 2]
            $before = @(Get-ProcessOfExe $Checksum)
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $script, $mode, $target.Id, (Resolve-Path $ModulePath).Path, $Checksum, $Engine)
            $child = Start-Process -FilePath $pwsh[0] -ArgumentList $arguments -PassThru -RedirectStandardOutput (Join-Path $FaultWork 'child.out')
            $now = [System.Collections.Generic.List[string]]::new()
            $tracer = 0
            try {
                # Traced: ptrace shows a TracerPid; the eBPF engine holds a program fd in the child pwsh.
                $traced = Wait-Until -TimeoutSeconds 60 -What "the $mode trace" {
                    $bpf = $Engine -eq 'Bpf' -and @(Get-ChildItem "/proc/$($child.Id)/fd" -ErrorAction Ignore | Where-Object LinkTarget -eq 'anon_inode:bpf-prog').Count
                    $candidates = if ($mode -eq 'Attach') { @($target.Id) } else { @(Get-ProcessOfExe $Checksum | Where-Object { $_ -notin $before }) }
                    $candidates | Where-Object { $bpf -or ($Engine -eq 'Ptrace' -and (Get-ProcStatusField $_ TracerPid) -ne '0') } | Select-Object -First 1
                }
                if ($Engine -eq 'Ptrace') { $tracer = [int](Get-ProcStatusField $traced TracerPid) }
                Start-Sleep -Milliseconds (Get-Random -Minimum 0 -Maximum 300)
                & kill -KILL $child.Id
                $child.WaitForExit(10000) | Out-Null   # with a timeout: a survivor holding its redirected stdout must not block us
                if ($mode -eq 'Attach') {
                    Wait-Until -TimeoutSeconds 10 -What 'the attached target to be untraced' { (Get-ProcStatusField $target.Id TracerPid) -eq '0' } | Out-Null
                    Test-FaultTarget $target | ForEach-Object { $now.Add("run ${i}: $_") }
                } else {
                    try { Wait-Until -TimeoutSeconds 10 -What 'the launched target to die' { (Get-TaskState "/proc/$traced/stat") -in $null, 'Z', 'X' } | Out-Null }
                    catch { $now.Add("run ${i}: the launched target $traced outlived its pwsh"); & kill -KILL $traced }
                }
                if ($tracer) {
                    Wait-Until -TimeoutSeconds 10 -What "the tracer $tracer to exit" { (Get-TaskState "/proc/$tracer/stat") -in $null, 'Z', 'X' } | Out-Null
                    if ((Get-TaskState "/proc/$tracer/stat") -eq 'Z') { $zombies++ }
                }
            } catch { $now.Add("run $i ($mode): $_") }
            finally { if (-not $child.HasExited) { $child.Kill() }; $child.Dispose() }
            if ($now.Count) { $failures.AddRange($now) } else { $survived++ }
        }
    } finally { Stop-Checksum $target }
    New-FaultResult "pwsh-killed-mid-trace-$($Engine.ToLower())" $Count $survived $failures @() "modes=attach,launch tracer_zombies_left_to_pid1=$zombies"
}

# Count start/stop cycles of Watch-Exec: after each, this pwsh holds as many BPF and perf fds as before; at
# the end, none of the programs it loaded exists any more, no link points at one, and our fds are back.
function Invoke-WatchCycleFault([int] $Count) {
    $programs = [System.Collections.Generic.HashSet[int]]::new()
    $failures = [System.Collections.Generic.List[string]]::new()
    $survived = 0
    $bpfBefore = 'prog', 'map', 'link' | ForEach-Object { "$_=$(Get-BpftoolCount $_)" }
    $bpfFds = Get-BpfFdCount
    for ($i = 0; $i -lt $Count; $i++) {
        if ($i -eq (Get-BaselineRun $Count)) { $baseline = Get-LeakBaseline }
        $ids = @(Watch-Exec -Timeout 0.02 -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match 'BPF programs ([\d, ]+)' } |
            ForEach-Object { $Matches[1] -split ',\s*' | ForEach-Object { [int]$_ } })
        $ids | ForEach-Object { [void]$programs.Add($_) }
        $held = Get-BpfFdCount
        if (-not $ids) { $failures.Add("cycle ${i}: no programs reported") }
        elseif ($held -ne $bpfFds) { $failures.Add("cycle ${i}: pwsh holds $held BPF/perf fds, $bpfFds before") }
        else { $survived++ }
    }
    $leaks = @(Compare-LeakBaseline $baseline)
    $alive = @((& bpftool prog list -j | ConvertFrom-Json) | Where-Object { $programs.Contains([int]$_.id) })
    if ($alive) { $leaks += "BPF program(s) still loaded: $($alive.id -join ',')" }
    $links = @((& bpftool link list -j | ConvertFrom-Json) | Where-Object { $programs.Contains([int]$_.prog_id) })
    if ($links) { $leaks += "BPF link(s) still attached: $($links.id -join ',')" }
    $bpfAfter = 'prog', 'map', 'link' | ForEach-Object { "$_=$(Get-BpftoolCount $_)" }
    New-FaultResult 'watch-exec-cycles' $Count $survived $failures $leaks "programs_loaded=$($programs.Count) machine_bpf_before=$($bpfBefore -join '/') after=$($bpfAfter -join '/')"
}
