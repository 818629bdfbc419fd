using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>
/// What the decoder may read of a tracee at one system call: its memory, its file descriptors and
/// its working directory. The ptrace engine reads them live while the tracee is stopped
/// (<see cref="LiveTracee"/>); the eBPF engine answers from the bytes its kernel program copied
/// (Tracing/Bpf/CopiedTracee.cs), and says so (<see cref="TraceeMemoryUnavailableException"/>)
/// when it holds no true copy, so the decoder shows "&lt;unavailable&gt;" rather than a wrong value.
/// </summary>
public interface ITraceeState
{
    /// <summary>The thread that made the call.</summary>
    int Tid { get; }

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="address"/>; returns how many were read
    /// (short at the first unreadable byte, 0 when nothing is readable there).
    /// </summary>
    int Read(ulong address, Span<byte> buffer);

    /// <summary>A NUL-terminated string of at most <paramref name="maxBytes"/> bytes (without its NUL).</summary>
    byte[] ReadCString(ulong address, int maxBytes, out bool truncated);

    /// <summary>What the fd refers to, as readlink of /proc/PID/fd/N shows it; null when unknown.</summary>
    string? FdPath(long fd);

    /// <summary>The working directory, as readlink of /proc/PID/cwd shows it; null when unknown.</summary>
    string? WorkingDirectory();
}

/// <summary>The engine has no true copy of the memory the decoder asked for (a page the kernel could not read without faulting it in).</summary>
public sealed class TraceeMemoryUnavailableException(ulong address)
    : Exception($"The tracee's memory at 0x{address:x} was not copied.")
{
    public ulong Address { get; } = address;
}

/// <summary>A stopped tracee, read live: process_vm_readv (then /proc/PID/mem) and /proc/PID/fd, /proc/PID/cwd.</summary>
public sealed class LiveTracee(int tid) : ITraceeState
{
    public int Tid { get; } = tid;

    public int Read(ulong address, Span<byte> buffer) => RemoteMemory.Read(Tid, address, buffer);

    public byte[] ReadCString(ulong address, int maxBytes, out bool truncated) => RemoteMemory.ReadCString(Tid, address, maxBytes, out truncated);

    public string? FdPath(long fd) => ReadLink($"/proc/{Tid}/fd/{fd}");

    public string? WorkingDirectory() => ReadLink($"/proc/{Tid}/cwd");

    internal static string? ReadLink(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
