# A warm pwsh that times Start-SyscallTrace as a user would (Measure-Command, output to $null), one
# request per line on stdin: "time|count <TAB> engine <TAB> filter|- <TAB> name <TAB> program <TAB> args...".
# Answers one line: "ms=..." for time, "calls=... lost=... events=..." for count (name: the calls counted).
param([Parameter(Mandatory)] [string] $Module)
$ErrorActionPreference = 'Stop'
Import-Module $Module
$inv = [cultureinfo]::InvariantCulture
while ($null -ne ($line = [Console]::In.ReadLine())) {
    $f = $line -split "`t"
    $p = @{ FilePath = $f[4]; Engine = $f[1]; RedirectStandardOutput = '/dev/null'; RedirectStandardError = '/dev/null' }
    if ($f.Count -gt 5) { $p.ArgumentList = $f[5..($f.Count - 1)] }
    if ($f[2] -ne '-') { $p.Syscall = $f[2] -split ',' }
    if ($f[0] -eq 'time') {
        $t = Measure-Command { Start-SyscallTrace @p -WarningAction SilentlyContinue > $null }
        [Console]::Out.WriteLine('ms=' + $t.TotalMilliseconds.ToString('F1', $inv))
    } else {
        $events = Start-SyscallTrace @p -WarningAction SilentlyContinue
        $name = $f[3]
        $calls = @($events.Where({ $_ -is [PSLinuxTrace.Engine.Model.SyscallEvent] -and ($name -eq '*' -or $_.Name -eq $name) })).Count
        $lost = ($events.Where({ $_ -is [PSLinuxTrace.Engine.Model.LostEventsEvent] }) | Measure-Object Count -Sum).Sum
        [Console]::Out.WriteLine("calls=$calls lost=$([long]$lost) events=$($events.Count)")
    }
    [Console]::Out.Flush()
}
