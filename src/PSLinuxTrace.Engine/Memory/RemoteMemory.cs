using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Memory;

/// <summary>
/// Reads another process's memory with process_vm_readv first (one system call per request, no file
/// to open), then /proc/PID/mem for what it cannot reach (pages mapped without read permission, which
/// /proc/PID/mem reads with FOLL_FORCE). process_vm_readv pins the pages it copies, and pinning a
/// copy-on-write page the process shares with a fork gives the process a private copy first (see
/// <see cref="MemoryFile"/>): use this only where the caller knows that cannot happen or cannot matter
/// (a launched tracee that never forked, a few bytes of a stopped tracee's syscall arguments), and
/// <see cref="MemoryFile"/> everywhere else.
/// </summary>
public sealed class RemoteMemory(int pid) : IAddressSpace
{
    public int Pid { get; } = pid;

    /// <inheritdoc cref="Read(int, ulong, Span{byte})"/>
    public int Read(ulong address, Span<byte> buffer) => Read(Pid, address, buffer);

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes at <paramref name="address"/>; returns how many bytes were
    /// read (short at the first unreadable page, 0 when nothing is readable there).
    /// Throws <see cref="ProcessNotFoundException"/> when the process is gone.
    /// </summary>
    public static int Read(int pid, ulong address, Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        int done = 0;
        while (done < buffer.Length)
        {
            nint n = LibC.ProcessVmRead(pid, buffer[done..], address + (ulong)done);
            if (n > 0) { done += (int)n; continue; }
            int errno = n < 0 ? Errno.Last : 0;
            if (errno == Errno.ESRCH) throw new ProcessNotFoundException(pid);
            if (errno == Errno.EPERM) throw Errno.ToException(errno, "process_vm_readv", pid);
            break; // EFAULT (unmapped or unreadable page) or 0 bytes: try /proc/PID/mem below
        }
        if (done < buffer.Length)
            done += ReadProcMem(pid, address + (ulong)done, buffer[done..]);
        return done;
    }

    /// <summary>Reads exactly <c>buffer.Length</c> bytes or throws.</summary>
    public static void ReadExactly(int pid, ulong address, Span<byte> buffer)
    {
        int n = Read(pid, address, buffer);
        if (n != buffer.Length)
            throw new NativeCallException("process_vm_readv", Errno.EFAULT, $"pid {pid}: only {n} of {buffer.Length} bytes readable at 0x{address:x}");
    }

    /// <summary>A NUL-terminated string of at most <paramref name="maxBytes"/> bytes, as raw bytes.</summary>
    public static byte[] ReadCString(int pid, ulong address, int maxBytes, out bool truncated) =>
        AddressSpaceExtensions.ReadCString(new RemoteMemory(pid), address, maxBytes, out truncated);

    private static int ReadProcMem(int pid, ulong address, Span<byte> buffer)
    {
        using var mem = MemoryFile.Open(pid);
        return mem.Read(address, buffer);
    }
}
