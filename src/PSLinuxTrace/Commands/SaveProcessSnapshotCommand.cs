using System.Diagnostics;
using System.Management.Automation;
using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Access;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Snapshot;

namespace PSLinuxTrace.Commands;

/// <summary>Save-ProcessSnapshot: a live process (or a launched program) written to an ELF core file.</summary>
[Cmdlet(VerbsData.Save, "ProcessSnapshot", DefaultParameterSetName = LiveSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ProcessSnapshot))]
public sealed class SaveProcessSnapshotCommand : PSLinuxTraceCmdlet
{
    private const string LiveSet = "Live", LaunchSet = "Launch";

    /// <summary>The process to snapshot.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = LiveSet, ValueFromPipelineByPropertyName = true)]
    [Alias("ProcessId", "PID")]
    [ValidateRange(1, int.MaxValue)]
    public int Id { get; set; }

    /// <summary>A program to launch and snapshot at its first unreplayable system call.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LaunchSet)]
    [ValidateNotNullOrEmpty]
    public string FilePath { get; set; } = "";

    /// <summary>Arguments of the launched program.</summary>
    [Parameter(ParameterSetName = LaunchSet)]
    [Alias("Args")]
    public string[] ArgumentList { get; set; } = Array.Empty<string>();

    /// <summary>The core file to write; an existing directory gets core.PID inside it.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Which memory goes in (default: what gcore writes).</summary>
    [Parameter]
    public SnapshotMemory Include { get; set; } = SnapshotMemory.Default;

    /// <summary>How memory is read while the process runs (default Auto: CloneTwin up to 4 GiB of anonymous memory, above that WriteTracked where the kernel has it).</summary>
    [Parameter(ParameterSetName = LiveSet)]
    public SnapshotMethod Method { get; set; } = SnapshotMethod.Auto;

    /// <summary>Overwrite an existing file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Files for the launched program's standard streams (default: the console).</summary>
    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardInput { get; set; }

    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardOutput { get; set; }

    [Parameter(ParameterSetName = LaunchSet)]
    public string? RedirectStandardError { get; set; }

    protected override void ProcessRecord()
    {
        bool launch = ParameterSetName == LaunchSet;
        string target = launch ? FilePath : Describe(Id);
        string output;
        try { output = ResolveFileSystemPath(Path); }
        catch (ArgumentException ex)
        {
            WriteEngineError(ex, Path);
            return;
        }
        if (Directory.Exists(output)) output = System.IO.Path.Combine(output, launch ? $"core.{System.IO.Path.GetFileName(FilePath)}" : $"core.{Id}");
        if (File.Exists(output) && !Force)
        {
            WriteEngineError(new IOException($"The file '{output}' already exists; use -Force to overwrite it."), output,
                ErrorMapping.SnapshotFileExists, ErrorCategory.ResourceExists);
            return;
        }
        string action = launch
            ? $"Run until its first unreplayable system call, write it to '{output}', and end it"
            : $"Pause briefly and write a core file to '{output}'";
        if (!ShouldProcess(target, action)) return;

        var progress = new ProgressRecord(1, $"Saving a snapshot of {target}", "Writing memory") { PercentComplete = 0 };
        var lastProgress = Stopwatch.StartNew();
        void Progress(long done, long total)
        {
            if (lastProgress.ElapsedMilliseconds < 200 && done < total) return;
            lastProgress.Restart();
            DrainLog();
            progress.PercentComplete = total == 0 ? 100 : (int)Math.Min(100, done * 100 / total);
            progress.StatusDescription = $"{done / 1048576} of {total / 1048576} MiB";
            WriteProgress(progress);
        }
        try
        {
            ProcessSnapshot result = launch
                ? new LaunchSnapshotter(Log).Save(ResolveProgram(FilePath), ArgumentList, output, Include,
                    ResolveLaunchStream(RedirectStandardInput), ResolveLaunchStream(RedirectStandardOutput), ResolveLaunchStream(RedirectStandardError),
                    Progress, StopToken, CurrentDirectory)
                : new LiveSnapshotter(Log).Save(Id, output, Include, Progress, StopToken, Method);
            progress.RecordType = ProgressRecordType.Completed;
            WriteProgress(progress);
            DrainLog(); // the engine logged each of result.Warnings as a warning when it happened
            WriteObject(result);
        }
        catch (OperationCanceledException)
        {
            DrainLog();
        }
        catch (UnauthorizedAccessException ex) when (ex.Message.Contains(output, StringComparison.Ordinal))
        {
            // The core file itself cannot be created: say which directory mode and capability, not just "Access denied".
            WriteEngineError(FileAccessDiagnosis.Explain(output, write: true, ex), output);
        }
        catch (Exception ex) when (ex is LinuxTraceException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            WriteEngineError(ex, launch ? FilePath : Id);
        }
    }


    private static string Describe(int pid)
    {
        try { return $"process {pid} ({ProcFs.ReadComm(pid)})"; }
        catch (LinuxTraceException) { return $"process {pid}"; }
    }
}
