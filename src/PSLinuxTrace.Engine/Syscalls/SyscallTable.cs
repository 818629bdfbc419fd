namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>x86_64 system call numbers and names.</summary>
public static partial class SyscallTable
{
    // Lazy: static fields of partial classes in other files may not be initialized yet.
    private static Dictionary<string, int>? _numbers;
    private static Dictionary<string, int> Numbers => _numbers ??= BuildNumbers();

    private static Dictionary<string, int> BuildNumbers()
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < Names.Length; i++)
            if (Names[i] is { } n) d[n] = i;
        return d;
    }

    /// <summary>"openat" for 257; "syscall_400" for a number with no system call.</summary>
    public static string Name(long number) =>
        number >= 0 && number < Names.Length && Names[number] is { } n ? n : $"syscall_{number}";

    /// <summary>The number of a system call name, or -1.</summary>
    public static int Number(string name) => Numbers.TryGetValue(name, out int n) ? n : -1;

    /// <summary>Every system call name, in number order.</summary>
    public static IEnumerable<string> AllNames => Names.Where(n => n is not null)!;

    public static bool IsKnown(long number) => number >= 0 && number < Names.Length && Names[number] is not null;
}
