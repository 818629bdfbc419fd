using System.Diagnostics;
using System.Management.Automation;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Access;
using PSLinuxTrace.Engine.Cores;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Commands;

/// <summary>Read-CoreDump: a Linux ELF core file as objects, with symbolized backtraces.</summary>
[Cmdlet(VerbsCommunications.Read, "CoreDump", DefaultParameterSetName = PathSet)]
[OutputType(typeof(CoreDump))]
public sealed class ReadCoreDumpCommand : PSLinuxTraceCmdlet
{
    private const string PathSet = "Path", LiteralPathSet = "LiteralPath";

    /// <summary>Core files; wildcards are expanded.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Core files, taken literally; Get-ChildItem's output binds here by PSPath.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "FullName", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>The executable, when it is not where the core says.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ExecutablePath { get; set; }

    /// <summary>A copy of the target's filesystem, searched first for mapped files and debug files.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SysRoot { get; set; }

    /// <summary>Skip unwinding (faster: notes, registers and mappings only).</summary>
    [Parameter]
    public SwitchParameter NoBacktrace { get; set; }

    private CoreDumpReader? _reader;
    private CoreDumpOptions? _options;

    protected override void BeginProcessing()
    {
        string? exe = null, root = null;
        try
        {
            exe = ResolveOptionalPath(ExecutablePath);
            root = ResolveOptionalPath(SysRoot);
        }
        catch (ArgumentException ex)
        {
            ThrowEngineError(ex, ExecutablePath ?? SysRoot);
        }
        if (exe is not null && !File.Exists(exe))
            ThrowEngineError(new FileNotFoundException($"The executable '{exe}' does not exist.", exe), exe);
        if (root is not null && !Directory.Exists(root))
            ThrowEngineError(new DirectoryNotFoundException($"The sysroot '{root}' does not exist."), root);
        _options = new CoreDumpOptions { ExecutablePath = exe, SysRoot = root, Backtraces = !NoBacktrace };
        _reader = new CoreDumpReader(Log);
    }

    protected override void ProcessRecord()
    {
        foreach (string file in ResolvePaths())
        {
            if (StopToken.IsCancellationRequested) return;
            try
            {
                Log.LogInformation("Reading {Core}.", file);
                var progress = new ProgressRecord(1, $"Reading {file}", "Decompressing") { PercentComplete = 0 };
                var core = _reader!.Read(file, _options! with { DecompressionProgress = (done, total) => Progress(progress, done, total) }, StopToken);
                if (progress.PercentComplete > 0)
                {
                    progress.RecordType = ProgressRecordType.Completed;
                    WriteProgress(progress);
                }
                DrainLog();
                WriteObject(core);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (UnauthorizedAccessException ex) when (!CanOpen(file))
            {
                // The core itself is unreadable: say which mode and capability, not just "Access denied".
                WriteEngineError(FileAccessDiagnosis.Explain(file, write: false, ex), file);
            }
            catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException)
            {
                WriteEngineError(ex, file);
            }
        }
        DrainLog();
    }

    private static bool CanOpen(string file)
    {
        try { File.OpenHandle(file).Dispose(); return true; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }

    private readonly Stopwatch _lastProgress = Stopwatch.StartNew();

    /// <summary>Decompressing a multi-GiB core takes seconds: say how far it is, five times a second at most.</summary>
    private void Progress(ProgressRecord progress, long done, long total)
    {
        if (_lastProgress.ElapsedMilliseconds < 200) return;
        _lastProgress.Restart();
        DrainLog();
        progress.PercentComplete = total == 0 ? 100 : (int)Math.Clamp(done * 100 / total, 1, 100);
        progress.StatusDescription = $"{done / 1048576} of {total / 1048576} MiB of compressed core";
        WriteProgress(progress);
    }

    private IEnumerable<string> ResolvePaths()
    {
        if (ParameterSetName == LiteralPathSet)
        {
            foreach (string p in LiteralPath)
            {
                string resolved;
                try { resolved = ResolveFileSystemPath(p); }
                catch (ArgumentException ex)
                {
                    WriteEngineError(ex, p);
                    continue;
                }
                if (File.Exists(resolved)) yield return resolved;
                else WriteEngineError(new FileNotFoundException($"Cannot find the core file '{resolved}'.", resolved), p);
            }
            yield break;
        }
        foreach (string p in Path)
        {
            List<string> files;
            try
            {
                files = GetResolvedProviderPathFromPSPath(p, out var provider).ToList();
                if (provider.Name != "FileSystem")
                {
                    WriteEngineError(new ArgumentException($"'{p}' is not a file system path."), p);
                    continue;
                }
            }
            catch (ItemNotFoundException)
            {
                WriteEngineError(new FileNotFoundException($"Cannot find the core file '{p}'.", p), p);
                continue;
            }
            foreach (string f in files)
                if (!Directory.Exists(f)) yield return f;
        }
    }

    protected override void DisposeResources() => _reader?.Dispose();
}
