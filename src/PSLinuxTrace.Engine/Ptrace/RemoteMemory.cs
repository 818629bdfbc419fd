using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Reads another process's memory in bulk: process_vm_readv first (one system call per request,
/// no ptrace stop needed), then /proc/PID/mem for what it cannot reach (pages the target mapped
/// without read permission, which /proc/PID/mem can read with FOLL_FORCE).
/// </summary>
public static class RemoteMemory
{
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
    public static byte[] ReadCString(int pid, ulong address, int maxBytes, out bool truncated)
    {
        var result = new List<byte>(64);
        Span<byte> chunk = stackalloc byte[256];
        truncated = false;
        while (result.Count < maxBytes)
        {
            // Never cross a page boundary in one read, so a string at the end of a mapping still reads.
            int toPageEnd = 4096 - (int)((address + (ulong)result.Count) & 4095);
            int want = Math.Min(Math.Min(chunk.Length, toPageEnd), maxBytes - result.Count);
            int n = Read(pid, address + (ulong)result.Count, chunk[..want]);
            if (n == 0) return [.. result];
            int nul = chunk[..n].IndexOf((byte)0);
            if (nul >= 0) { result.AddRange(chunk[..nul].ToArray()); return [.. result]; }
            result.AddRange(chunk[..n].ToArray());
        }
        truncated = true;
        return [.. result];
    }

    private static int ReadProcMem(int pid, ulong address, Span<byte> buffer)
    {
        using var mem = MemoryFile.Open(pid);
        return mem.Read(address, buffer);
    }
}
