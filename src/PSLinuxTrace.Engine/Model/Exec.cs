namespace PSLinuxTrace.Engine.Model;

/// <summary>Which system call ran the program.</summary>
public enum ExecSyscall
{
    Execve,
    Execveat,
}

/// <summary>
/// One execve/execveat anywhere on the machine: Watch-Exec's output. The caller's identity comes from
/// the moment of the call (before the new program replaced the old one); <see cref="Result"/> comes from
/// the exit of the same call. Strings that are not valid UTF-8 show each bad byte as \xNN.
/// </summary>
public sealed record ExecEvent
{
    /// <summary>Wall-clock time of the call (local time).</summary>
    public DateTime Timestamp { get; init; }
    public int Pid { get; init; }
    public int Tid { get; init; }
    public int ParentId { get; init; }
    public uint UserId { get; init; }
    public uint GroupId { get; init; }
    /// <summary>The calling program's comm (what it was before the exec, at most 15 characters).</summary>
    public string Comm { get; init; } = "";
    public ExecSyscall Syscall { get; init; }
    /// <summary>The path argument as the caller passed it (relative to DirectoryFd for execveat).</summary>
    public string Filename { get; init; } = "";
    public string[] Argv { get; init; } = [];
    /// <summary>True when argv had more strings or bytes than are captured (256 strings, 32 KiB), or a string could not be read.</summary>
    public bool Truncated { get; init; }
    /// <summary>"0" on success, else the errno name (ENOENT, EACCES, ...); null when the exit was not seen.</summary>
    public string? Result { get; init; }
    /// <summary>0 on success, else the errno number; null when the exit was not seen.</summary>
    public int? ErrorCode { get; init; }
    /// <summary>envp, only with -IncludeEnvironment.</summary>
    public string[]? Environment { get; init; }
    public bool EnvironmentTruncated { get; init; }
    /// <summary>Inode number of the caller's pid namespace (as in /proc/PID/ns/pid).</summary>
    public uint PidNamespace { get; init; }
    /// <summary>The caller's cgroup v2 id (the inode number of its cgroup directory).</summary>
    public ulong CgroupId { get; init; }
    /// <summary>execveat's dirfd (-100 is AT_FDCWD) and flags; 0 for execve.</summary>
    public int DirectoryFd { get; init; }
    public uint AtFlags { get; init; }

    /// <summary>Argv joined with spaces, arguments with blanks or quotes single-quoted.</summary>
    public string CommandLine => string.Join(' ', Argv.Select(Quote));

    private static string Quote(string a) =>
        a.Length == 0 ? "''" : a.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"') ? "'" + a.Replace("'", "''") + "'" : a;

    public override string ToString() => $"[{Pid}] {CommandLine} = {Result ?? "?"}";
}

/// <summary>Counters of a finished (or running) watch: Watch-Exec's verbose summary.</summary>
public sealed record ExecWatchSummary(long Events, ulong LostEvents, ulong FaultedReads, TimeSpan Duration);
