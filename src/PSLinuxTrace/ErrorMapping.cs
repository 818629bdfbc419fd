using System.Management.Automation;
using PSLinuxTrace.Engine;

namespace PSLinuxTrace;

/// <summary>
/// The one mapping from engine exceptions to ErrorCategory and stable error ids. An id is just the
/// stable name ("ProcessNotFound"); PowerShell appends the command's type name itself, so
/// FullyQualifiedErrorId reads "ProcessNotFound,PSLinuxTrace.Commands.GetProcSymbolCommand".
/// </summary>
internal static class ErrorMapping
{
    /// <summary>Ids of errors the cmdlets raise themselves, not from an engine exception's own id.</summary>
    public const string InvalidSyscallFilter = "InvalidSyscallFilter", SnapshotFileExists = "SnapshotFileExists", DiskFull = "DiskFull";

    // On Unix an IOException from a failed write carries the errno as its HResult (ENOSPC 28, EDQUOT 122: errno(3)).
    private const int Enospc = 28, Edquot = 122;

    public static ErrorCategory Category(Exception ex) => ex switch
    {
        ProcessNotFoundException => ErrorCategory.ObjectNotFound,
        TargetPermissionDeniedException => ErrorCategory.PermissionDenied,
        UnsupportedFeatureException => ErrorCategory.NotImplemented,
        BadInputFormatException => ErrorCategory.InvalidData,
        TargetBusyException => ErrorCategory.ResourceBusy,
        FileNotFoundException or DirectoryNotFoundException => ErrorCategory.ObjectNotFound,
        UnauthorizedAccessException => ErrorCategory.PermissionDenied,
        ArgumentException => ErrorCategory.InvalidArgument,
        OperationCanceledException => ErrorCategory.OperationStopped,
        IOException => ErrorCategory.WriteError,
        _ => ErrorCategory.NotSpecified,
    };

    public static string ErrorId(Exception ex) => ex switch
    {
        LinuxTraceException lte => lte.ErrorId,
        FileNotFoundException or DirectoryNotFoundException => "FileNotFound",
        UnauthorizedAccessException => "PermissionDenied",
        ArgumentException => "InvalidArgument",
        IOException { HResult: Enospc or Edquot } => DiskFull,
        _ => ex.GetType().Name,
    };

    /// <summary>The record for <paramref name="ex"/>; <paramref name="errorId"/> and <paramref name="category"/> replace the mapped ones.</summary>
    public static ErrorRecord ToErrorRecord(Exception ex, object? target, string? errorId = null, ErrorCategory? category = null)
    {
        var record = new ErrorRecord(ex, errorId ?? ErrorId(ex), category ?? Category(ex), target);
        if (ex is TargetPermissionDeniedException denied && (denied.RecommendedAction ?? Grant(denied.MissingCapability)) is { } action)
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = action };
        else if (ex is TargetBusyException { OwnerPid: { } owner })
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = $"Detach the other tracer (pid {owner}) first." };
        return record;
    }

    // Root that lacks a capability cannot get it by being root again: never tell root to run as root.
    private static string? Grant(string? capability) => capability is null ? null
        : Environment.IsPrivilegedProcess ? $"Run the command from a process that holds {capability}."
        : $"Run as root (sudo) or grant {capability}.";
}
