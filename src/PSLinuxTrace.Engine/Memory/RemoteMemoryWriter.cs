namespace PSLinuxTrace.Engine.Memory;

/// <summary>
/// Writes into a tracee's memory through /proc/PID/mem (the kernel lets its ptracer write there, even to
/// read-only pages); used only to hand the tracee data for an injected system call.
/// </summary>
public static class RemoteMemoryWriter
{
    public static void Write(int pid, ulong address, ReadOnlySpan<byte> data)
    {
        try
        {
            using var mem = File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.ReadWrite);
            RandomAccess.Write(mem, data, checked((long)address));
        }
        catch (FileNotFoundException) { throw new ProcessNotFoundException(pid); }
        catch (DirectoryNotFoundException) { throw new ProcessNotFoundException(pid); }
        catch (UnauthorizedAccessException)
        {
            throw Access.AccessDiagnosis.Explain(pid, $"writing /proc/{pid}/mem", Interop.Errno.EACCES);
        }
        catch (IOException ex)
        {
            throw new NativeCallException("write(/proc/PID/mem)", Interop.Errno.EIO, $"pid {pid}: cannot write {data.Length} bytes at 0x{address:x}: {ex.Message}");
        }
    }
}
