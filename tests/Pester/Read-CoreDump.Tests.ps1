#Requires -Version 7.4
# Read-CoreDump from a user's chair: cores made by the kernel and by gcore from tests/Fixtures/crash.c,
# checked against gdb on the same core. Needs root (core_pattern, gcore), cc, gdb.
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $ModulePath -Force
    $script:Work = Join-Path ([System.IO.Path]::GetTempPath()) "pslt-pester-core-$PID"
    New-Item -ItemType Directory -Path $Work -Force | Out-Null
    $script:Exe = Join-Path $Work 'crash'
    & cc -g -O0 -fno-omit-frame-pointer -pthread -o $Exe (Join-Path $PSScriptRoot '..' 'Fixtures' 'crash.c')
    if ($LASTEXITCODE -ne 0) { throw 'cc failed' }
    # Cores land in the crash's working directory as "core"; a pipe (systemd-coredump, apport) is put back in AfterAll.
    $script:SavedPattern = (Get-Content /proc/sys/kernel/core_pattern -Raw).Trim()
    if ($SavedPattern -ne 'core') { Set-Content -Path /proc/sys/kernel/core_pattern -Value 'core' -NoNewline }

    function New-KernelCore([string] $Mode, [int] $Threads) {
        $dir = Join-Path $Work "$Mode-$Threads"
        New-Item -ItemType Directory -Path $dir -Force | Out-Null
        & sh -c "cd '$dir' && ulimit -c unlimited && exec '$Exe' $Mode $Threads" > (Join-Path $dir 'stdout.txt')
        Join-Path $dir 'core'
    }

    function Get-GdbFrames([string] $Core) {
        # LWP -> function names, from gdb's `thread apply all bt`
        $out = & gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'set width 0' -ex 'thread apply all bt' $Exe $Core 2>$null
        $map = @{}; $lwp = $null
        foreach ($line in $out) {
            if ($line -match '^Thread \d+ \(.*LWP (\d+)\)') { $lwp = [int]$Matches[1]; $map[$lwp] = [System.Collections.Generic.List[string]]::new() }
            elseif ($line -match '^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(' -and $null -ne $lwp) { $map[$lwp].Add($Matches[1]) }
        }
        $map
    }

    $script:SegvCore = New-KernelCore segv 0
    $script:AbortCore = New-KernelCore abort 7
}

AfterAll {
    if ($script:SavedPattern -and $script:SavedPattern -ne 'core') { Set-Content -Path /proc/sys/kernel/core_pattern -Value $script:SavedPattern -NoNewline }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'Read-CoreDump' {
    It 'reads a SIGSEGV core: signal, fault address, crash site' {
        $core = Read-CoreDump -Path $SegvCore
        $core | Should -BeOfType PSLinuxTrace.Engine.Model.CoreDump
        $core.Signal | Should -Be 'SIGSEGV'
        $core.FaultAddress | Should -Be 0x10
        $core.Threads | Should -HaveCount 1
        $core.CrashingThread.Frames[0].Symbol | Should -Be 'pslt_crash_here'
        $core.CrashingThread.Frames[1].Symbol | Should -Be 'main'
        $core.Executable | Should -Be $Exe
    }

    It 'does not load ClrMD for a core of a program without a .NET runtime' {
        # A fresh pwsh, so no other test's .NET target has loaded it: managed frames cost nothing here.
        # This pwsh again: its own executable, or `dotnet pwsh.dll` when it runs as a dotnet tool.
        $pwsh = [Environment]::ProcessPath
        [string[]] $dll = if ((Split-Path -Leaf $pwsh) -eq 'dotnet') { @(Join-Path $PSHOME 'pwsh.dll') } else { @() }
        $out = & $pwsh @dll -NoProfile -NonInteractive -c "Import-Module '$ModulePath'; `$c = Read-CoreDump -Path '$SegvCore'; `$c.CrashingThread.Frames[0].Kind; [AppDomain]::CurrentDomain.GetAssemblies().GetName().Name -contains 'Microsoft.Diagnostics.Runtime'"
        $out | Should -Be @('Native', 'False')
    }

    It 'names the frames of every thread as gdb does' {
        $core = Read-CoreDump -Path $AbortCore
        $core.Threads | Should -HaveCount 8
        $gdb = Get-GdbFrames $AbortCore
        foreach ($t in $core.Threads) {
            # gdb stops at main (backtrace past-main is off), so compare the fixture's own functions.
            $names = 'pslt_crash_here', 'main', 'pslt_worker_wait', 'worker'
            $ours = @($t.Frames | Where-Object { $_.ModulePath -eq $Exe -and $_.Symbol -in $names } | ForEach-Object Symbol)
            $theirs = @($gdb[$t.Tid] | Where-Object { $_ -in $names })
            $ours | Should -Be $theirs
        }
    }

    It 'takes files from Get-ChildItem' {
        $cores = Get-ChildItem -Path $Work -Recurse -Filter core | Read-CoreDump -NoBacktrace
        $cores | Should -HaveCount 2
        ($cores | Group-Object Signal | Sort-Object Name).Name | Should -Be @('SIGABRT', 'SIGSEGV')
        $cores.Threads.Frames | Should -BeNullOrEmpty
    }

    It 'reads memory from the core and from the mapped files' {
        $core = Read-CoreDump $SegvCore
        $execfn = ($core.Auxv | Where-Object Name -EQ AT_EXECFN).Value
        $core.ReadString($execfn) | Should -Be $Exe
        $text = $core.Mappings | Where-Object { $_.Path -eq $Exe -and $_.FileOffset -eq 0 } | Select-Object -First 1
        [System.Text.Encoding]::ASCII.GetString($core.ReadMemory($text.Start, 4), 1, 3) | Should -Be 'ELF'
    }

    It 'reads a gcore core of a live process, which keeps running' {
        $psi = [System.Diagnostics.ProcessStartInfo]::new($Exe)
        'wait', '2' | ForEach-Object { $psi.ArgumentList.Add($_) }
        $psi.RedirectStandardOutput = $true; $psi.RedirectStandardInput = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        try {
            while ($p.StandardOutput.ReadLine() -ne 'ready') { }
            $prefix = Join-Path $Work 'gcore'
            & gcore -o $prefix $p.Id *> $null
            $core = Read-CoreDump "$prefix.$($p.Id)"
            $core.Pid | Should -Be $p.Id
            $core.Threads | Should -HaveCount 3
            $core.Producer | Should -Be 'Gdb'
            $p.HasExited | Should -BeFalse
        } finally { $p.Kill(); $p.WaitForExit() }
    }

    It 'shows the crashing frames like gdb in the default view' {
        $text = (Read-CoreDump $SegvCore).CrashingThread.Frames | Out-String
        $text | Should -Match 'pslt_crash_here'
        $text | Should -Match '0x[0-9a-f]{16}'
    }

    It 'reports a file that is not a core as InvalidData' {
        $notCore = Join-Path $Work 'not-a-core'
        Set-Content -Path $notCore -Value 'hello'
        Read-CoreDump -Path $notCore -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId BadInputFormat Read-CoreDump)
        Read-CoreDump -Path $Exe -ErrorVariable err2 -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err2[0].Exception.Message | Should -Match 'not a core dump'
    }

    It 'reports a missing file as ObjectNotFound' {
        Read-CoreDump -LiteralPath (Join-Path $Work 'no-such-core') -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId FileNotFound Read-CoreDump)
    }

    It 'says a 4-byte file with the ELF magic is truncated, and how long it is' {
        $stub = Join-Path $Work 'four-bytes'
        [System.IO.File]::WriteAllBytes($stub, [byte[]](0x7f, 0x45, 0x4c, 0x46))
        (Get-Item $stub).Length | Should -Be 4
        Read-CoreDump -Path $stub -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId BadInputFormat Read-CoreDump)
        $err[0].Exception.Message | Should -BeLike '*truncated: 4 bytes, an ELF header needs 64*'
    }

    It 'shows registers and load biases in hex, as gdb does' {
        $core = Read-CoreDump $SegvCore
        $regs = $core.CrashingThread.Registers | Out-String
        $gdb = & gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'info registers rip rsp' $Exe $SegvCore 2>$null | Out-String
        foreach ($r in 'rip', 'rsp') {
            $gdb -match "(?m)^$r\s+(0x[0-9a-f]+)" | Should -BeTrue
            $regs | Should -Match "(?m)^$r\s*:\s*$($Matches[1])\s*$"
            # Inside a thread's list, too (Format-List of a thread shows Registers as one line).
            $thread = $core.CrashingThread | Format-List | Out-String -Width 300
            $thread | Should -Match "Registers\s*:\s*.*\b$($r)=$($Matches[1])\b"
        }
        $regs | Should -Not -Match '(?m)^Rip\s*:\s*\d+\s*$'
        $bias = ($core.BuildIds | Where-Object Path -EQ $Exe).LoadBias
        $bias | Should -BeGreaterThan 0   # a PIE
        ($core.BuildIds | Out-String -Width 300) | Should -Match ('0x{0:x}\s' -f $bias)
        # The load bias is where the core says the executable's first page is mapped (a PIE's first PT_LOAD is at 0).
        $first = $core.Mappings | Where-Object { $_.Path -eq $Exe } | Sort-Object Start | Select-Object -First 1
        $bias | Should -Be $first.Start
    }

    It 'resolves its paths against PowerShell''s location' {
        Push-Location (Split-Path $SegvCore)
        try {
            $core = Read-CoreDump -LiteralPath ./core -ExecutablePath "../$(Split-Path $Exe -Leaf)"
            $core.Path | Should -Be $SegvCore
            ($core.BuildIds | Where-Object Path -EQ $Exe).FoundPath | Should -Be $Exe
            (Read-CoreDump -Path ./co* -NoBacktrace).Path | Should -Be $SegvCore
        } finally { Pop-Location }
    }

    It 'reads a truncated core with a warning' {
        $cut = Join-Path $Work 'truncated-core'
        Copy-Item -LiteralPath $SegvCore -Destination $cut
        $fs = [System.IO.File]::OpenWrite($cut)
        try { $fs.SetLength([long]($fs.Length * 0.75)) } finally { $fs.Dispose() }
        $core = Read-CoreDump $cut -WarningVariable warn -WarningAction SilentlyContinue
        $core.IsTruncated | Should -BeTrue
        $warn | Should -Not -BeNullOrEmpty
    }

    It 'uses -ExecutablePath when the program moved, and warns about a different program' {
        $moved = Join-Path $Work 'moved-crash'
        Copy-Item -LiteralPath $Exe -Destination $moved
        $core = Read-CoreDump $SegvCore -ExecutablePath $moved -WarningVariable warn -WarningAction SilentlyContinue
        $core.CrashingThread.Frames[0].Symbol | Should -Be 'pslt_crash_here'
        ($core.BuildIds | Where-Object Path -EQ $Exe).FoundPath | Should -Be $moved
        $warn | Should -BeNullOrEmpty

        $other = Join-Path $Work 'other'
        'int main(void) { return 0; }' | & cc -g -O0 -o $other -x c -
        $LASTEXITCODE | Should -Be 0
        $core = Read-CoreDump $SegvCore -ExecutablePath $other -WarningVariable warn2 -WarningAction SilentlyContinue
        $warn2 -join "`n" | Should -Match 'does not match'
        $core.CrashingThread.Frames[0].Symbol | Should -BeNullOrEmpty
    }

    It 'looks mapped files up under -SysRoot first' {
        $root = Join-Path $Work 'sysroot'
        $copy = Join-Path $root $Exe.TrimStart('/')
        New-Item -ItemType Directory -Path (Split-Path $copy) -Force | Out-Null
        Copy-Item -LiteralPath $Exe -Destination $copy
        $core = Read-CoreDump $SegvCore -SysRoot $root
        ($core.BuildIds | Where-Object Path -EQ $Exe).FoundPath | Should -Be $copy
        $core.CrashingThread.Frames[0].Symbol | Should -Be 'pslt_crash_here'
    }
}

Describe 'Read-CoreDump on the cores systemd-coredump keeps' {
    BeforeAll {
        # systemd-coredump does not run here: its folder is imitated, with its names
        # (core.COMM.UID.BOOTID.PID.USEC.zst|lz4|xz) and cores compressed by the real zstd, lz4 and xz.
        $script:CoreDir = Join-Path $Work 'var-lib-systemd-coredump'
        New-Item -ItemType Directory -Path $CoreDir -Force | Out-Null
        $bootId = (Get-Content /proc/sys/kernel/random/boot_id -Raw).Trim().Replace('-', '')
        function Save-Compressed([string] $Core, [string] $Tool, [string] $Suffix) {
            $c = Read-CoreDump $Core -NoBacktrace
            $name = 'core.{0}.{1}.{2}.{3}.{4}.{5}' -f $c.ProcessName, $c.UserId, $bootId, $c.Pid, ([DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() * 1000), $Suffix
            $out = Join-Path $CoreDir $name
            & sh -c "$Tool -c '$Core' > '$out'"
            $out
        }
        $again2 = Join-Path $Work 'segv-again'
        New-Item -ItemType Directory -Path $again2 -Force | Out-Null
        & sh -c "cd '$again2' && ulimit -c unlimited && exec '$Exe' segv 0" > $null
        $script:Zst = Save-Compressed $SegvCore zstd zst
        $script:Lz4 = Save-Compressed $AbortCore lz4 lz4
        $script:Xz = Save-Compressed (Join-Path $again2 'core') xz xz
        Remove-Item -Recurse -Force $again2
    }

    It 'reads the folder from Get-ChildItem without unpacking anything' {
        $cores = Get-ChildItem $CoreDir | Read-CoreDump
        $cores | Should -HaveCount 3
        ($cores.Compression | Sort-Object) | Should -Be @('lz4', 'xz', 'zstd')
        ($cores.Path | Sort-Object) | Should -Be (@($Zst, $Lz4, $Xz) | Sort-Object)
        ($cores | Where-Object Compression -EQ zstd).CrashingThread.Frames[0].Symbol | Should -Be 'pslt_crash_here'
        ($cores | Where-Object Compression -EQ lz4).Threads | Should -HaveCount 8
        # Nothing left in TMPDIR: the temporary cores were unlinked as soon as they were made.
        Get-ChildItem ([System.IO.Path]::GetTempPath()) -Force -Filter '.pslinuxtrace-core.*' | Should -BeNullOrEmpty
    }

    It 'groups the same crash from two runs by Signature' {
        $groups = Get-ChildItem $CoreDir | Read-CoreDump -NoBacktrace | Group-Object Signature
        $groups | Should -HaveCount 2
        $segv = $groups | Where-Object Count -EQ 2
        $segv.Name | Should -BeLike 'SIGSEGV|*pslt_crash_here|*main|*'
        @($segv.Group.Pid | Select-Object -Unique) | Should -HaveCount 2
        ($segv.Group.SignatureHash | Select-Object -Unique) | Should -Match '^[0-9a-f]{16}$'
        (Read-CoreDump $SegvCore).Signature | Should -BeExactly $segv.Name
    }

    It 'shows the compression and the signature hash in the default view' {
        $text = Read-CoreDump $Zst | Out-String
        $text | Should -Match ([regex]::Escape("$Zst (zstd)"))
        $text | Should -Match 'SignatureHash\s*:\s*[0-9a-f]{16}'
    }

    It 'reports a cut-short compressed core as InvalidData, saying how far it got' {
        $cut = Join-Path $Work 'cut.zst'
        $bytes = [System.IO.File]::ReadAllBytes($Zst)
        [System.IO.File]::WriteAllBytes($cut, $bytes[0..($bytes.Length / 2)])
        Read-CoreDump $cut -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].FullyQualifiedErrorId | Should -BeExactly (Get-QualifiedId BadInputFormat Read-CoreDump)
        $err[0].Exception.Message | Should -BeLike "*$cut*decompression stopped after*"
    }

    It 'keeps the compressed core''s data when the object crosses remoting' {
        $core = Read-CoreDump $Zst
        $back = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($core, 6))
        $back.Signature | Should -BeExactly $core.Signature
        $back.Compression | Should -Be 'zstd'
        $back.CoreSize | Should -Be $core.CoreSize
        $back.Threads[0].Frames[0].Symbol | Should -Be 'pslt_crash_here'
    }
}

Describe 'Read-CoreDump source lines' {
    BeforeAll {
        # tests/Fixtures/inline_crash.c at -O2: inlined calls (one from a header) and a tail call on the way to the crash.
        $script:Opt = Join-Path $Work 'inline_crash'
        & cc -g -O2 -fno-omit-frame-pointer -pthread -o $Opt (Join-Path $PSScriptRoot '..' 'Fixtures' 'inline_crash.c')
        if ($LASTEXITCODE -ne 0) { throw 'cc failed' }
        function New-OptCore([string] $Exe, [string] $Name) {
            $dir = Join-Path $Work $Name
            New-Item -ItemType Directory -Path $dir -Force | Out-Null
            & sh -c "cd '$dir' && ulimit -c unlimited && exec '$Exe' segv 2" > $null 2>&1
            Join-Path $dir 'core'
        }
        $script:OptCore = New-OptCore $Opt 'inline-segv'
    }

    It 'shows inlined frames and file:line like gdb bt, in the default view too' {
        $frames = (Read-CoreDump $OptCore).CrashingThread.Frames
        # gdb prints frame 0 when it loads the core, then the backtrace: keep the lines from the last "#0" on.
        $lines = @(& gdb -nx -batch -iex 'set debuginfod enabled off' -ex 'set width 0' -ex 'bt' $Opt $OptCore 2>$null | Where-Object { $_ -match '^#\d+ ' })
        $last0 = [array]::FindLastIndex([string[]]$lines, [Predicate[string]] { param($l) $l -match '^#0 ' })
        $gdb = $lines[$last0..($lines.Count - 1)] | ForEach-Object { if ($_ -match '^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(.* at (\S+):(\d+)$') { "$($Matches[1]) $(Split-Path -Leaf $Matches[2]):$($Matches[3])" } }
        $gdb.Count | Should -BeGreaterThan 4
        $ours = $frames | Select-Object -First $gdb.Count | ForEach-Object { "$($_.Symbol) $(Split-Path -Leaf $_.File):$($_.Line)" }
        $ours | Should -Be $gdb
        ($frames | Where-Object IsInlined).Symbol | Should -Contain 'ic_validate'
        $text = $frames | Out-String
        $text | Should -Match 'ic_check \(inlined\) at inline_crash\.h:\d+'
        $text | Should -Match 'ic_dispatch\+0x[0-9a-f]+ at inline_crash\.c:\d+'
    }

    It 'fetches debug info from the debuginfod server $env:DEBUGINFOD_URLS names, and says so with -Verbose' {
        # A stripped program whose debug file only the server has; Debian's debuginfod on a free port, stopped at the end.
        $srv = Join-Path $Work 'debuginfod-srv'
        New-Item -ItemType Directory -Path $srv -Force | Out-Null
        $stripped = Join-Path $Work 'inline_crash-stripped'
        & objcopy --only-keep-debug $Opt (Join-Path $srv 'inline_crash.debug')
        & objcopy --strip-debug "--add-gnu-debuglink=$(Join-Path $srv 'inline_crash.debug')" $Opt $stripped
        Copy-Item $stripped (Join-Path $srv 'inline_crash')
        $core = New-OptCore $stripped 'debuginfod'
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
        $listener.Start(); $port = $listener.LocalEndpoint.Port; $listener.Stop()
        $db = Join-Path $Work 'debuginfod.sqlite'
        $server = Start-Process -FilePath debuginfod -ArgumentList '-F', $srv, '-p', $port, '-d', $db, '-t', '0', '-g', '0' -PassThru -RedirectStandardError (Join-Path $Work 'debuginfod.log')
        $saved = $env:DEBUGINFOD_URLS, $env:DEBUGINFOD_CACHE_PATH
        try {
            Wait-Until { try { (Invoke-WebRequest "http://127.0.0.1:$port/metrics").Content -match 'scanned_files_total\{source="file"\} 2' } catch { $false } } -TimeoutSeconds 30 -What 'debuginfod to scan its folder'
            $env:DEBUGINFOD_URLS = "http://127.0.0.1:$port"
            $env:DEBUGINFOD_CACHE_PATH = Join-Path $Work 'debuginfod-cache'
            $dump = Read-CoreDump $core -Verbose 4>&1
            $verbose = $dump | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message
            $verbose -join "`n" | Should -Match "fetched the debuginfo of build-id [0-9a-f]+ from http://127\.0\.0\.1:$port/buildid/"
            $frames = ($dump | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.CoreDump] }).CrashingThread.Frames
            ($frames | Where-Object Symbol -EQ 'ic_crash').Line | Should -BeGreaterThan 0
            # A second Read-CoreDump, the server gone: the cache answers.
            $server.Kill(); $server.WaitForExit()
            $again = Read-CoreDump $core -Verbose 4>&1
            ($again | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n" | Should -Match 'debuginfo of build-id [0-9a-f]+ from the cache'
            ($again | Where-Object { $_ -is [PSLinuxTrace.Engine.Model.CoreDump] }).CrashingThread.Frames.Line | Should -Be $frames.Line
        } finally {
            $env:DEBUGINFOD_URLS, $env:DEBUGINFOD_CACHE_PATH = $saved
            if (-not $server.HasExited) { $server.Kill(); $server.WaitForExit() }
        }
    }
}
