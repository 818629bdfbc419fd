namespace PSLinuxTrace.Engine;

/// <summary>
/// The one root of every exception the engine throws on purpose. The cmdlet layer maps each
/// subclass to an ErrorCategory and a stable error id; anything else is a bug.
/// </summary>
public class LinuxTraceException : Exception
{
    public LinuxTraceException(string message, Exception? inner = null, int errno = 0) : base(message, inner) => Errno = errno;

    /// <summary>The errno that caused this, when a system call did (0 otherwise).</summary>
    public int Errno { get; }

    /// <summary>A stable, machine-readable id ("ProcessNotFound"); the cmdlet appends its own name.</summary>
    public virtual string ErrorId => "LinuxTraceError";
}

/// <summary>
/// EPERM/EACCES: the caller lacks a privilege (CAP_SYS_PTRACE, CAP_BPF, ...), or a rule refused it.
/// About a process, <see cref="Access.AccessDiagnosis.Explain"/> builds it with the real reason.
/// </summary>
public sealed class TargetPermissionDeniedException(string message, string? missingCapability = null, Exception? inner = null,
    string? recommendedAction = null, int errno = 0)
    : LinuxTraceException(message, inner, errno)
{
    /// <summary>The capability that would have been enough (CAP_SYS_PTRACE), or null when none would.</summary>
    public string? MissingCapability { get; } = missingCapability;
    /// <summary>What the user can do about it, when the engine knows better than "grant the capability".</summary>
    public string? RecommendedAction { get; } = recommendedAction;
    public override string ErrorId => "PermissionDenied";
}

/// <summary>ESRCH/ENOENT on /proc/PID: the process does not exist, or exited while we looked.</summary>
public sealed class ProcessNotFoundException(int pid, string? message = null, Exception? inner = null)
    : LinuxTraceException(message ?? $"No process with id {pid} exists (it may have exited).", inner)
{
    public int ProcessId { get; } = pid;
    public override string ErrorId => "ProcessNotFound";
}

/// <summary>
/// The running kernel (or its configuration) lacks a feature we need, or (<paramref name="byKernel"/>
/// false) the target is of a kind the operation cannot handle, such as a kernel thread.
/// </summary>
public sealed class UnsupportedFeatureException(string feature, string? minimumVersion = null, string? detail = null, Exception? inner = null, bool byKernel = true)
    : LinuxTraceException(
        $"{feature} is not supported{(byKernel ? " by this kernel" : "")}" +
        (minimumVersion is null ? "" : $" (needs Linux {minimumVersion} or later)") +
        (detail is null ? "." : $": {detail}"), inner)
{
    public string Feature { get; } = feature;
    public string? MinimumVersion { get; } = minimumVersion;
    public string? Detail { get; } = detail;
    /// <summary>True when the kernel lacks the feature; false when the target is of a kind the operation cannot handle.</summary>
    public bool ByKernel { get; } = byKernel;
    public override string ErrorId => "UnsupportedFeature";
}

/// <summary>A file (ELF, core, BPF object) whose bytes break the format: truncated, out of bounds, inconsistent.</summary>
public sealed class BadInputFormatException(string message, Exception? inner = null) : LinuxTraceException(message, inner)
{
    public override string ErrorId => "BadInputFormat";
}

/// <summary>The target is busy with someone else: already ptraced by another tracer, for example.</summary>
public sealed class TargetBusyException(string message, int? ownerPid = null) : LinuxTraceException(message)
{
    /// <summary>The pid holding the target (the tracer pid), when known.</summary>
    public int? OwnerPid { get; } = ownerPid;
    public override string ErrorId => "TargetBusy";
}

/// <summary>A system call failed in a way that none of the typed exceptions describes.</summary>
public sealed class NativeCallException(string call, int errno, string? context = null)
    : LinuxTraceException($"{call} failed: {Interop.Errno.Name(errno)} ({Interop.Errno.Describe(errno)})" + (context is null ? "" : $" [{context}]"), null, errno)
{
    public string Call { get; } = call;
    public string? Context { get; } = context;
    public override string ErrorId => "NativeCallFailed";
}
