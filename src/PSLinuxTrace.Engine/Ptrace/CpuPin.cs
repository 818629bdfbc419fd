using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Ptrace;

/// <summary>
/// Keeps the calling (tracer) thread on the CPU the target last ran on while the target is paused:
/// every ptrace stop, single step and wait is a wake-up, and a wake-up across CPUs costs 55-105 µs on
/// these VMs against about 7 µs on one (shared/PERFORMANCE.md). Dispose restores the old mask;
/// disposing twice is harmless. Best effort: when the CPU cannot be read or the kernel refuses, nothing changes.
/// </summary>
public sealed class CpuPin : IDisposable
{
    private ulong[]? _previous;

    /// <summary>The calling thread's own mask while a pin is on it; null when it is not pinned.</summary>
    [ThreadStatic] private static ulong[]? t_unpinned;

    private CpuPin(ulong[]? previous)
    {
        _previous = previous;
        if (previous is not null) t_unpinned = previous;
    }

    /// <summary>The mask the calling thread has when not pinned (its current one when no pin is on): what threads it creates should get.</summary>
    public static ulong[]? UnpinnedMask => t_unpinned ?? ThreadAffinity.Get();

    public static CpuPin ToCpuOf(int pid, ILogger log)
    {
        int cpu = LastCpu(pid);
        var previous = cpu >= 0 ? ThreadAffinity.Get() : null;
        if (previous is null || !ThreadAffinity.PinTo(cpu))
        {
            log.LogDebug("Not pinned to the CPU of process {Pid} (cpu {Cpu}).", pid, cpu);
            return new CpuPin(null);
        }
        log.LogDebug("Pinned the tracer thread to CPU {Cpu}, where process {Pid} last ran.", cpu, pid);
        return new CpuPin(previous);
    }

    /// <summary>Field 39 of /proc/PID/stat ("processor"), or -1.</summary>
    internal static int LastCpu(int pid)
    {
        try
        {
            var fields = ProcFs.ReadStatFields(pid);
            return fields.Length > 36 && int.TryParse(fields[36], out int cpu) ? cpu : -1;
        }
        catch (LinuxTraceException) { return -1; }
    }

    public void Dispose()
    {
        if (_previous is null) return;
        ThreadAffinity.Set(_previous);
        _previous = null;
        t_unpinned = null;
    }
}
