using System.Diagnostics;
using System.Management.Automation;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Completion;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Symbols;

namespace PSLinuxTrace.Commands;

/// <summary>Get-ProcSymbol: where named ELF symbols live in running processes.</summary>
[Cmdlet(VerbsCommon.Get, "ProcSymbol", DefaultParameterSetName = ScanSet)]
[OutputType(typeof(ProcSymbol))]
public sealed class GetProcSymbolCommand : PSLinuxTraceCmdlet
{
    private const string ScanSet = "Scan", WatchSet = "Watch";

    /// <summary>Symbol names; wildcards are matched against the symbol tables.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(SymbolNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>Globs on the mapped file: with a '/' against the full path, else against the file name.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Path { get; set; }

    /// <summary>Process ids to scan (default: every process).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    [ValidateNotNullOrEmpty]
    [ValidateRange(1, int.MaxValue)]
    public int[]? Id { get; set; }

    /// <summary>Keep scanning, emitting each new (process, module, symbol), until Ctrl+C.</summary>
    [Parameter(Mandatory = true, ParameterSetName = WatchSet)]
    public SwitchParameter Watch { get; set; }

    /// <summary>Time between scans with -Watch (a number is seconds).</summary>
    [Parameter(ParameterSetName = WatchSet)]
    [SecondsToTimeSpan]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(2);

    private ProcSymbolScanner? _scanner;
    private ProcSymbolQuery? _query;
    private List<int>? _watchIds;
    private bool _watchAll;
    private bool _warnedUnreadable;
    private readonly HashSet<(int Pid, string ErrorId)> _reported = new();

    protected override void BeginProcessing()
    {
        try
        {
            _query = new ProcSymbolQuery(Name, Path);
        }
        catch (ArgumentException ex)
        {
            ThrowEngineError(ex, Name);
        }
        if (Watch && (Interval <= TimeSpan.Zero || Interval > TimeSpan.FromDays(1)))
            ThrowEngineError(new ArgumentException($"-Interval must be between 0 and 1 day; got {Interval}."), Interval);
        _scanner = new ProcSymbolScanner(Log);
    }

    protected override void ProcessRecord()
    {
        if (Watch)
        {
            // Watching starts in EndProcessing, once every piped pid is known.
            if (Id is null) _watchAll = true;
            else (_watchIds ??= new List<int>()).AddRange(Id);
            return;
        }
        RunScan(Id);
    }

    protected override void EndProcessing()
    {
        if (!Watch)
        {
            ReportPathMatchedNothing();
            return;
        }
        IReadOnlyList<int>? ids = _watchAll || _watchIds is null ? null : _watchIds.Distinct().ToList();
        Log.LogInformation("Watching {Target} every {Interval} for {Names}; press Ctrl+C to stop.",
            ids is null ? "every process" : $"process(es) {string.Join(", ", ids)}", Interval, string.Join(", ", Name));
        var sw = Stopwatch.StartNew();
        int before = _scanner!.FilesParsed;
        var watch = new ProcSymbolWatch(_scanner, _query!, ids, Interval);
        foreach (var symbol in watch.Run((ex, pid) => WriteEngineError(ex, pid), found =>
        {
            Log.LogInformation("Found {Count} new symbol location(s); parsed {Files} new file(s) in {Ms} ms.", found, _scanner.FilesParsed - before, sw.ElapsedMilliseconds);
            WarnUnreadableOnce();
            sw.Restart();
            before = _scanner.FilesParsed;
        }, StopToken))
        {
            DrainLog();
            WriteObject(symbol);
        }
        DrainLog();
    }

    private void RunScan(IEnumerable<int>? ids)
    {
        var sw = Stopwatch.StartNew();
        int before = _scanner!.FilesParsed, count = 0;
        Log.LogInformation("Scanning {Target} for {Names}{Paths}.",
            ids is null ? "every process" : $"process(es) {string.Join(", ", ids)}", string.Join(", ", Name),
            Path is null ? "" : $" in files matching {string.Join(", ", Path)}");
        foreach (var symbol in _scanner.Scan(_query!, ids, ReportError, StopToken))
        {
            DrainLog();
            WriteObject(symbol);
            count++;
        }
        Log.LogInformation("Found {Count} symbol location(s); parsed {Files} new file(s) in {Ms} ms.", count, _scanner.FilesParsed - before, sw.ElapsedMilliseconds);
        WarnUnreadableOnce();
    }

    // A -Path no mapped file matched is most likely a mistyped glob: say so, as for a missing pid, rather
    // than write nothing. (-Watch waits for such files instead.)
    private void ReportPathMatchedNothing()
    {
        if (Path is null || _scanner!.ProcessesScanned == 0 || _scanner.FilesMatchingPath > 0) return;
        var patterns = string.Join(", ", Path.Select(p => $"'{p}'"));
        WriteEngineError(new FileNotFoundException(
            $"No file mapped by the {_scanner.ProcessesScanned} process(es) searched matches -Path {patterns}. " +
            "A pattern without a '/' is matched against the file name ('libssl.so*'), one with a '/' against the whole path ('/usr/lib/*')."),
            Path, "NoMappedFileMatchesPath");
    }

    // Once per run, also with -Watch: the processes a scan of every process could not read.
    private void WarnUnreadableOnce()
    {
        DrainLog();
        if (_warnedUnreadable || _scanner!.Unreadable.Count == 0) return;
        _warnedUnreadable = true;
        WriteWarning($"Skipped {_scanner.Unreadable.Count} process(es) this session may not read ({string.Join(", ", _scanner.Unreadable.Order().Take(10))}" +
            $"{(_scanner.Unreadable.Count > 10 ? ", ..." : "")}); -Verbose says why, and -Id with one of them writes its error.");
    }

    // An error for a named process: each (process, error id) once per run.
    private void ReportError(LinuxTraceException ex, int pid)
    {
        if (_reported.Add((pid, ex.ErrorId))) WriteEngineError(ex, pid);
    }

    protected override void DisposeResources() => _scanner?.Dispose();
}
