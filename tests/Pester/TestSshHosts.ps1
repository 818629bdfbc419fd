# Real sshd "hosts" for the remoting tests and bench/remoting: dot-source it, then Start-TestSshHost.
# Each host is its own /usr/sbin/sshd on 127.0.0.1 (its own port, config, host key and log), all made
# at run time in one temp folder, with key authentication for root from a key made there too, and a
# `powershell` subsystem running the pwsh that runs this script with the built module on its
# PSModulePath. Nothing of the machine's or the user's ssh setup is read or changed: the client gets
# its key, known_hosts and options on the command line (-KeyFilePath, -Options), sshd its config file.
# Each host has a name of its own (pslt-host1...: ssh's HostName option sends it to 127.0.0.1), so
# results carry a PSComputerName per host, as from a fleet.

# Every process a host's session starts (its pwsh, the tracers and programs that pwsh starts) has this
# variable in its environment, set to the run's folder; the sshd are known by their config file in
# that folder. That is how the tests find what a host left behind, and how a later run finds an
# earlier run's sshd.
$script:SshHostMarker = 'PSLT_TEST_SSHD'
$script:SshRootPattern = 'pslt-sshd-\d+-[0-9a-f]{8}'

# Get-PwshCommandLine is TestHelpers.ps1's: dot-source that first.

# Quotes a string for /bin/sh.
function ConvertTo-ShellWord([string] $Text) { "'" + $Text.Replace("'", "'\''") + "'" }

# The processes of one run's hosts (or of every run's, without -Root): pid -> the run's folder.
function Get-TestSshProcess([string] $Root) {
    $found = @{}
    foreach ($dir in [System.IO.Directory]::EnumerateDirectories('/proc')) {
        $name = Split-Path -Leaf $dir
        if ($name -notmatch '^\d+$') { continue }
        try {
            $environ = [System.IO.File]::ReadAllText("$dir/environ")
            $cmdline = [System.IO.File]::ReadAllText("$dir/cmdline")
        } catch { continue }   # gone meanwhile
        $runRoot = $null
        foreach ($entry in $environ.Split([char]0)) { if ($entry.StartsWith("$SshHostMarker=")) { $runRoot = $entry.Substring($SshHostMarker.Length + 1); break } }
        # sshd rewrites its command line ("sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] ...").
        if (-not $runRoot -and $cmdline.Replace([char]0, ' ') -match "^(?:sshd: )?/usr/sbin/sshd .*-f (/\S*/$SshRootPattern)/") { $runRoot = $Matches[1] }
        if ($runRoot -and (-not $Root -or $runRoot -eq $Root)) { $found[[int]$name] = $runRoot }
    }
    $found
}

# The pids of one run's host processes.
function Get-TestSshProcessId([string] $Root) { @((Get-TestSshProcess $Root).Keys) }

# Kills what an earlier run that did not clean up left (its sshd still holding a port): every marked
# process whose run's owner (the pwsh that started it, named in the folder's owner file) is gone.
function Stop-StaleTestSshHost {
    $byRoot = (Get-TestSshProcess).GetEnumerator() | Group-Object Value
    foreach ($run in $byRoot) {
        $ownerFile = Join-Path $run.Name 'owner'
        $owner = if (Test-Path $ownerFile) { [int](Get-Content $ownerFile -Raw) } else { 0 }
        if ($owner -gt 0 -and (Test-Path "/proc/$owner")) { continue }   # a run that is still going
        foreach ($p in $run.Group) { & /bin/kill -KILL $p.Key 2>$null }
        Remove-Item -Recurse -Force $run.Name -ErrorAction Ignore
    }
    # And the folders such runs left with nothing running.
    foreach ($dir in Get-ChildItem ([System.IO.Path]::GetTempPath()) -Directory -Filter 'pslt-sshd-*' | Where-Object Name -match "^$SshRootPattern$") {
        $owner = [int](Get-Content (Join-Path $dir.FullName 'owner') -Raw -ErrorAction Ignore)
        if (-not $owner -and $dir.CreationTimeUtc -gt [DateTime]::UtcNow.AddMinutes(-1)) { continue }   # a run writing its owner file
        if (-not $owner -or -not (Test-Path "/proc/$owner")) { Remove-Item -Recurse -Force $dir.FullName -ErrorAction Ignore }
    }
}

function Test-TcpPortFree([int] $Port) {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Port)
    try { $listener.Start(); $true } catch { $false } finally { $listener.Stop() }
}

# Starts $Count sshd hosts; returns them (Name, Port, Process, Splat: the parameters of Invoke-Command
# and New-PSSession for the host) and keeps them in $script:SshHosts for Stop-TestSshHost.
function Start-TestSshHost([int] $Count = 3, [int] $BasePort = 22221, [string] $ModuleRoot) {
    Stop-StaleTestSshHost
    $root = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-sshd-$PID-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    New-Item -ItemType Directory -Path $root | Out-Null
    Set-Content -Path (Join-Path $root 'owner') -Value $PID -NoNewline
    # sshd's privilege-separation directory (Debian's unit makes it at service start; nothing else lives there).
    if (-not (Test-Path /run/sshd)) { New-Item -ItemType Directory -Path /run/sshd | Out-Null; & chmod 0755 /run/sshd }

    $clientKey = Join-Path $root 'client_ed25519'
    & ssh-keygen -q -t ed25519 -N '' -C pslt-test-client -f $clientKey
    if ($LASTEXITCODE -ne 0) { throw 'ssh-keygen failed for the client key' }
    Copy-Item "$clientKey.pub" (Join-Path $root 'authorized_keys')
    $knownHosts = Join-Path $root 'known_hosts'
    New-Item -ItemType File -Path $knownHosts | Out-Null

    # The subsystems: the pwsh of this run, the module on its path, the marker in its environment;
    # powershell-nocaps is the same without any capability (root's uid, an empty bounding set), for the permission tests.
    $pwsh = (Get-PwshCommandLine | ForEach-Object { ConvertTo-ShellWord $_ }) -join ' '
    $envLines = "export $SshHostMarker=$(ConvertTo-ShellWord $root) PSModulePath=$(ConvertTo-ShellWord $ModuleRoot) POWERSHELL_TELEMETRY_OPTOUT=1 POWERSHELL_UPDATECHECK=Off"
    $subsystem = Join-Path $root 'pwsh-subsystem.sh'
    Set-Content -Path $subsystem -Value "#!/bin/sh`n$envLines`nexec $pwsh `"`$@`"`n"
    $nocaps = Join-Path $root 'pwsh-subsystem-nocaps.sh'
    Set-Content -Path $nocaps -Value "#!/bin/sh`n$envLines`nexec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- $pwsh `"`$@`"`n"
    & chmod 0755 $subsystem $nocaps

    $hosts = [System.Collections.Generic.List[object]]::new()
    $port = $BasePort
    for ($i = 1; $i -le $Count; $i++) {
        $name = "pslt-host$i"
        $dir = Join-Path $root $name
        New-Item -ItemType Directory -Path $dir | Out-Null
        $hostKey = Join-Path $dir 'ssh_host_ed25519_key'
        & ssh-keygen -q -t ed25519 -N '' -C $name -f $hostKey
        if ($LASTEXITCODE -ne 0) { throw "ssh-keygen failed for $name" }
        $started = $null
        for ($try = 0; $try -lt 20 -and -not $started; $try++, $port++) {
            if (-not (Test-TcpPortFree $port)) { continue }
            $started = Start-OneSshd -Dir $dir -Port $port -HostKey $hostKey -Root $root -Subsystem $subsystem -NoCapsSubsystem $nocaps
        }
        if (-not $started) { throw "Could not start sshd for $name on a free port from $BasePort" }
        $hostPort = $port - 1
        # known_hosts names the host as ssh looks it up: by the address it connects to ([127.0.0.1]:port) and by the alias.
        $key = (Get-Content "$hostKey.pub" -Raw).Trim() -split ' '
        Add-Content -Path $knownHosts -Value "[127.0.0.1]:$hostPort,[localhost]:$hostPort,[$name]:$hostPort $($key[0]) $($key[1])"
        $hosts.Add([pscustomobject]@{ Name = $name; Port = $hostPort; Process = $started; Dir = $dir; Root = $root })
    }
    $options = @{
        HostName = '127.0.0.1'; AddressFamily = 'inet'; UserKnownHostsFile = $knownHosts; GlobalKnownHostsFile = '/dev/null'
        StrictHostKeyChecking = 'yes'; IdentitiesOnly = 'yes'; IdentityAgent = 'none'; BatchMode = 'yes'; ConnectTimeout = '20'; LogLevel = 'ERROR'
    }
    foreach ($h in $hosts) {
        $h | Add-Member -NotePropertyName KeyFilePath -NotePropertyValue $clientKey
        $h | Add-Member -NotePropertyName Options -NotePropertyValue $options
        # For `Invoke-Command @($h.Splat)` and New-PSSession. Not -SSHConnection: pwsh 7.6.9 drops the keys of
        # its hashtables that enumerate before HostName (here Port and Options).
        $h | Add-Member -NotePropertyName Splat -NotePropertyValue @{ HostName = $h.Name; Port = $h.Port; UserName = 'root'; KeyFilePath = $clientKey; Options = $options }
    }
    $script:SshHosts = $hosts.ToArray()
    $script:SshRoot = $root
    $script:SshHosts
}

# One sshd in the foreground (-D, logging to its file with -e); the Process once it listens, or $null
# when the port was taken meanwhile.
function Start-OneSshd([string] $Dir, [int] $Port, [string] $HostKey, [string] $Root, [string] $Subsystem, [string] $NoCapsSubsystem) {
    $config = Join-Path $Dir 'sshd_config'
    $log = Join-Path $Dir "sshd-$Port.log"
    Set-Content -Path $config -Value @"
ListenAddress 127.0.0.1
Port $Port
HostKey $HostKey
PidFile $Dir/sshd.pid
AuthorizedKeysFile $Root/authorized_keys
# The key files live in a temp folder that is not the user's ~/.ssh.
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers root
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
LogLevel VERBOSE
Subsystem powershell $Subsystem -sshs -NoLogo -NoProfile
Subsystem powershell-nocaps $NoCapsSubsystem -sshs -NoLogo -NoProfile
"@
    & /usr/sbin/sshd -t -f $config
    if ($LASTEXITCODE -ne 0) { throw "sshd -t rejected $config" }
    $p = Start-Process -FilePath /usr/sbin/sshd -ArgumentList '-D', '-e', '-f', $config -RedirectStandardError $log -PassThru
    $deadline = [DateTime]::UtcNow.AddSeconds(15)
    while ([DateTime]::UtcNow -lt $deadline) {
        $text = Get-Content $log -Raw -ErrorAction Ignore
        if ($text -match "Server listening on 127\.0\.0\.1 port $Port") { return $p }
        if ($p.HasExited) {
            if ($text -match 'Address already in use') { return $null }
            throw "sshd on port $Port exited: $text"
        }
        Start-Sleep -Milliseconds 20
    }
    throw "sshd on port $Port did not listen within 15 s: $(Get-Content $log -Raw -ErrorAction Ignore)"
}

# A session to a host: by its name, or (-HostName localhost) by the name a user would type for this machine.
function New-TestSshSession([object] $SshHost, [string] $HostName, [string] $Subsystem) {
    $p = $SshHost.Splat.Clone()
    if ($HostName) { $p.HostName = $HostName }
    if ($Subsystem) { $p.Subsystem = $Subsystem }
    New-PSSession @p -ErrorAction Stop
}

# One session to each host, in host order (what `New-PSSession -HostName web1, web2, web3` gives a user;
# user@host:port names each host's port).
function New-TestSshFleet([object[]] $SshHost = $script:SshHosts) {
    $names = $SshHost | ForEach-Object { "root@$($_.Name):$($_.Port)" }
    New-PSSession -HostName $names -KeyFilePath $SshHost[0].KeyFilePath -Options $SshHost[0].Options -ErrorAction Stop | Sort-Object ComputerName
}

# Sets a variable in each session of a fleet to that host's value ($ByHost: host name -> value).
function Set-FleetVariable([object[]] $Session, [string] $Name, [hashtable] $ByHost) {
    foreach ($s in $Session) {
        Invoke-Command -Session $s -ArgumentList $Name, $ByHost[$s.ComputerName] { param($n, $v) Set-Variable -Name $n -Value $v -Scope Global }
    }
}

# Closes this run's sessions to the hosts, stops their sshd and kills whatever a host left running
# (there should be nothing: the tests check that themselves first).
function Stop-TestSshHost {
    if (-not $script:SshRoot) { return }
    $ports = @($script:SshHosts | ForEach-Object Port)
    Get-PSSession | Where-Object { $_.Transport -eq 'SSH' -and $_.Runspace.ConnectionInfo.Port -in $ports } | Remove-PSSession
    foreach ($h in $script:SshHosts) {
        if (-not $h.Process.HasExited) { & /bin/kill -TERM $h.Process.Id; $h.Process.WaitForExit(5000) | Out-Null }
    }
    foreach ($id in @(Get-TestSshProcessId $script:SshRoot)) { & /bin/kill -KILL $id 2>$null }
    Remove-Item -Recurse -Force $script:SshRoot -ErrorAction Ignore
    $script:SshRoot = $null
    $script:SshHosts = @()
}
