namespace PSLinuxTrace.Engine.Model;

/// <summary>How a live snapshot reads memory without keeping the process stopped meanwhile.</summary>
public enum SnapshotMethod
{
    /// <summary>
    /// CloneTwin for a process with up to 4 GiB of anonymous memory resident (the faster of the two, and the twin's
    /// fork stays well inside a 50 ms pause); above that WriteTracked where the kernel has it (Linux 6.7 or later).
    /// </summary>
    Auto,
    /// <summary>
    /// Copy the memory while the process runs, tracking its writes (an asynchronous write-protect
    /// userfaultfd), then stop it once more to re-read only what it wrote meanwhile. No second process.
    /// </summary>
    WriteTracked,
    /// <summary>Make the process fork a copy-on-write twin (an injected clone) and read the twin while the process runs.</summary>
    CloneTwin,
}

/// <summary>Which memory a snapshot writes into the core (like /proc/PID/coredump_filter).</summary>
[Flags]
public enum SnapshotMemory
{
    None = 0,
    /// <summary>Private anonymous memory: heap, stacks, and written pages of private file mappings (.data, .bss).</summary>
    AnonymousPrivate = 1,
    /// <summary>Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, shmem).</summary>
    AnonymousShared = 2,
    /// <summary>Read-only private file mappings (program text, read-only data) in full.</summary>
    FilePrivate = 4,
    /// <summary>Shared file mappings.</summary>
    FileShared = 8,
    /// <summary>The first page of each mapped ELF file (its headers and build-id), so debuggers can match files.</summary>
    ElfHeaders = 16,
    /// <summary>What gcore and the kernel write by default.</summary>
    Default = AnonymousPrivate | AnonymousShared | ElfHeaders,
    All = AnonymousPrivate | AnonymousShared | FilePrivate | FileShared | ElfHeaders,
}

/// <summary>Save-ProcessSnapshot's output: a core file written from a live process (or a launched one).</summary>
public sealed record ProcessSnapshot(
    string Path,
    int Pid,
    int Threads,
    int Mappings,
    long Bytes,
    long MemoryBytes,
    TimeSpan PausedFor,
    TimeSpan Duration,
    string Method,
    string[] Warnings)
{
    /// <summary>For launch snapshots: the syscall the program was stopped at (not replayable), e.g. "openat(...O_RDWR...)".</summary>
    public string? StoppedAtSyscall { get; init; }
    public int? StoppedAtSyscallNumber { get; init; }
    /// <summary>Bytes that could not be read (PROT_NONE guard pages and the like), written as zeros.</summary>
    public long UnreadableBytes { get; init; }

    public double MegabytesPerSecond => Duration.TotalSeconds > 0 ? MemoryBytes / 1048576.0 / Duration.TotalSeconds : 0;
}
