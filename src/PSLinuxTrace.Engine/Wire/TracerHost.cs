namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// Where ptrace work runs. In the user's process (pwsh, a test host) every job that uses ptrace is
/// handed to the tracer process (<see cref="TracerClient"/>): the .NET runtime there waits for the
/// children that Process.Start started, and would take their ptrace stops from a tracer thread of
/// the same process. In the tracer process itself (<see cref="TracerServer"/>) jobs run in place.
/// </summary>
public static class TracerHost
{
    /// <summary>The environment variable that names the tracer executable (tests, benchmarks, packagers).</summary>
    public const string PathVariable = "PSLINUXTRACE_TRACER";

    /// <summary>The tracer executable's file name, next to the engine assembly.</summary>
    public const string ExecutableName = "pslinuxtrace-tracer";

    /// <summary>True inside the tracer process, where ptrace jobs run on the process's own threads.</summary>
    public static bool IsTracerProcess { get; internal set; }

    /// <summary>
    /// The process the user works in: the client of this tracer process, or this process when jobs
    /// run in place. A syscall trace of it would stop the very threads that read its events.
    /// </summary>
    public static int UserProcessId
    {
        get => Access.UserProcess.Id;
        internal set => Access.UserProcess.Id = value;
    }

    /// <summary>
    /// Set to 1, ptrace jobs run in the process that asks for them, as before the tracer process existed:
    /// for benchmarks that measure what the tracer process costs, and only safe for targets that are not
    /// children this process started with Process.Start.
    /// </summary>
    public const string InProcessVariable = "PSLINUXTRACE_IN_PROCESS";

    private static readonly bool InProcessRequested = Environment.GetEnvironmentVariable(InProcessVariable) == "1";

    /// <summary>Whether ptrace jobs run in this process (inside the tracer process, or when asked to by <see cref="InProcessVariable"/>).</summary>
    internal static bool RunsInPlace => IsTracerProcess || InProcessRequested;

    /// <summary>The tracer executable: $PSLINUXTRACE_TRACER, else next to this assembly.</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("SingleFile", "IL3000",
        Justification = "Only the user's process looks for the tracer, and there the engine is a file next to it.")]
    public static string ExecutablePath
    {
        get
        {
            string? fromEnvironment = Environment.GetEnvironmentVariable(PathVariable);
            if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
            string dir = Path.GetDirectoryName(typeof(TracerHost).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;
            return Path.Combine(dir, ExecutableName);
        }
    }
}
