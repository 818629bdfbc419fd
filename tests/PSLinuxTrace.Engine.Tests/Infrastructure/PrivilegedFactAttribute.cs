using Xunit;

namespace PSLinuxTrace.Engine.Tests.Infrastructure;

/// <summary>
/// Whether privileged tests may run. As root, or in CI (CI=true), they always run: a privileged test
/// that cannot work there must fail, never skip. Only a non-root developer outside CI sees them skipped,
/// with a reason that says what is missing.
/// </summary>
public static class Privilege
{
    public static bool IsRoot { get; } = Environment.UserName == "root" || GetEuid() == 0;
    public static bool InCI { get; } = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? SkipReason(string what) =>
        IsRoot || InCI ? null : $"needs root ({what}); run the tests as root to include it";

    private static uint GetEuid()
    {
        // /proc/self/status "Uid: real effective saved fs"
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
                return uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2]);
        return uint.MaxValue;
    }
}

/// <summary>A fact that needs root (ptrace of other users, bpf(), perf_event_open, unshare, ...).</summary>
public sealed class PrivilegedFactAttribute : FactAttribute
{
    public PrivilegedFactAttribute(string what = "CAP_SYS_PTRACE, CAP_BPF, CAP_SYS_ADMIN")
    {
        if (Privilege.SkipReason(what) is { } reason) Skip = reason;
    }
}

/// <summary>A theory that needs root.</summary>
public sealed class PrivilegedTheoryAttribute : TheoryAttribute
{
    public PrivilegedTheoryAttribute(string what = "CAP_SYS_PTRACE, CAP_BPF, CAP_SYS_ADMIN")
    {
        if (Privilege.SkipReason(what) is { } reason) Skip = reason;
    }
}
