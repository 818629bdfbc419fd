namespace PSLinuxTrace.Engine.Wire;

/// <summary>
/// Engine exceptions across the pipe: the tracer process describes one (<see cref="Describe"/>), the
/// user's process throws the same type with the same message and fields (<see cref="Rebuild"/>), so
/// the cmdlets map it to the same ErrorCategory and error id as if it had been thrown in place.
/// </summary>
internal static class RemoteError
{
    public static ErrorInfo Describe(Exception ex) => ex switch
    {
        TargetPermissionDeniedException p => Base(p) with { MissingCapability = p.MissingCapability, RecommendedAction = p.RecommendedAction },
        ProcessNotFoundException n => Base(n) with { ProcessId = n.ProcessId },
        UnsupportedFeatureException u => Base(u) with { Feature = u.Feature, MinimumVersion = u.MinimumVersion, Detail = u.Detail, ByKernel = u.ByKernel },
        TargetBusyException b => Base(b) with { OwnerPid = b.OwnerPid },
        NativeCallException c => Base(c) with { Call = c.Call, Context = c.Context },
        FileNotFoundException f => Base(f) with { FileName = f.FileName },
        _ => Base(ex),
    };

    private static ErrorInfo Base(Exception ex) => new()
    {
        Type = ex.GetType().Name,
        Message = ex.Message,
        // A plain IOException's HResult is the errno on Unix (ENOSPC is 28): the cmdlet's error id depends on it.
        Errno = ex is LinuxTraceException l ? l.Errno : ex.GetType() == typeof(IOException) ? ex.HResult : 0,
    };

    public static Exception Rebuild(ErrorInfo e) => e.Type switch
    {
        nameof(TargetPermissionDeniedException) => new TargetPermissionDeniedException(e.Message, e.MissingCapability, null, e.RecommendedAction, e.Errno),
        nameof(ProcessNotFoundException) => new ProcessNotFoundException(e.ProcessId ?? 0, e.Message),
        nameof(UnsupportedFeatureException) => new UnsupportedFeatureException(e.Feature ?? "", e.MinimumVersion, e.Detail, null, e.ByKernel),
        nameof(BadInputFormatException) => new BadInputFormatException(e.Message),
        nameof(TargetBusyException) => new TargetBusyException(e.Message, e.OwnerPid),
        nameof(NativeCallException) => new NativeCallException(e.Call ?? "", e.Errno, e.Context),
        nameof(LinuxTraceException) => new LinuxTraceException(e.Message, null, e.Errno),
        nameof(FileNotFoundException) => new FileNotFoundException(e.Message, e.FileName),
        nameof(DirectoryNotFoundException) => new DirectoryNotFoundException(e.Message),
        nameof(UnauthorizedAccessException) => new UnauthorizedAccessException(e.Message),
        nameof(IOException) => new IOException(e.Message, e.Errno),
        nameof(ArgumentException) or nameof(ArgumentOutOfRangeException) or nameof(ArgumentNullException) => new ArgumentException(e.Message),
        nameof(OperationCanceledException) or nameof(TaskCanceledException) => new OperationCanceledException(e.Message),
        _ => new LinuxTraceException($"The tracer process failed: {e.Type}: {e.Message}", null, e.Errno),
    };
}
