namespace PSLinuxTrace.Engine.Exec;

/// <summary>What to watch. Filters on uid, parent and pid namespace run in the kernel; the name glob runs here.</summary>
public sealed record ExecWatchOptions
{
    /// <summary>Globs on the executable path: with a '/' matched against the whole Filename, else against its last component.</summary>
    public string[]? Name { get; init; }
    public uint? UserId { get; init; }
    public int? ParentId { get; init; }
    /// <summary>Inode number of a pid namespace (/proc/PID/ns/pid).</summary>
    public uint? PidNamespace { get; init; }
    public bool IncludeEnvironment { get; init; }
    /// <summary>Ring buffer size in bytes: a power of two, at least one page.</summary>
    public int BufferSize { get; init; } = DefaultBufferSize;
    /// <summary>Stop after this many events (0: no limit).</summary>
    public long Count { get; init; }
    public TimeSpan? Timeout { get; init; }

    public const int DefaultBufferSize = 16 << 20;
}
