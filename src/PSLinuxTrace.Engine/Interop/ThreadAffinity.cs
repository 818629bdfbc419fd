namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// sched_getaffinity(2)/sched_setaffinity(2) for the calling thread (pid 0 = the caller), with the
/// old mask kept so a tracer can pin itself to its tracee's CPU for a short phase and then restore.
/// </summary>
internal static class ThreadAffinity
{
    private const int Words = 16; // 1024 CPUs, glibc's cpu_set_t

    /// <summary>The calling thread's CPU mask, or null when the kernel refuses.</summary>
    public static unsafe ulong[]? Get()
    {
        var mask = new ulong[Words];
        fixed (ulong* p = mask)
            return LibC.sched_getaffinity(0, Words * sizeof(ulong), p) == 0 ? mask : null;
    }

    /// <summary>Sets the calling thread's CPU mask; false when the kernel refuses (cpuset, offline CPU).</summary>
    public static unsafe bool Set(ulong[] mask)
    {
        if (mask.Length != Words) throw new ArgumentException($"A CPU mask has {Words} words.", nameof(mask));
        fixed (ulong* p = mask)
            return LibC.sched_setaffinity(0, Words * sizeof(ulong), p) == 0;
    }

    /// <summary>Pins the calling thread to one CPU; false when out of range or refused.</summary>
    public static bool PinTo(int cpu)
    {
        if (cpu < 0 || cpu >= Words * 64) return false;
        var mask = new ulong[Words];
        mask[cpu / 64] = 1UL << (cpu % 64);
        return Set(mask);
    }
}
