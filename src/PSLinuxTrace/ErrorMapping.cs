using System.Management.Automation;
using PSLinuxTrace.Engine;

namespace PSLinuxTrace;

/// <summary>The one mapping from engine exceptions to ErrorCategory and stable error ids.</summary>
internal static class ErrorMapping
{
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
        _ => ex.GetType().Name,
    };

    public static ErrorRecord ToErrorRecord(Exception ex, object? target, string? commandName)
    {
        string id = commandName is null ? ErrorId(ex) : $"{ErrorId(ex)},{ToTypeName(commandName)}";
        var record = new ErrorRecord(ex, id, Category(ex), target);
        if (ex is TargetPermissionDeniedException { MissingCapability: { } cap })
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = $"Run as root or grant {cap}." };
        else if (ex is TargetBusyException { OwnerPid: { } owner })
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = $"Detach the other tracer (pid {owner}) first." };
        return record;
    }

    // "Get-ProcSymbol" -> "PSLinuxTrace.Commands.GetProcSymbolCommand", PowerShell's own id convention.
    private static string ToTypeName(string commandName) =>
        $"PSLinuxTrace.Commands.{commandName.Replace("-", "")}Command";
}
