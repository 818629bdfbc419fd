using System.Text;
using PSLinuxTrace.Engine.Interop;
using BpfCalls = PSLinuxTrace.Engine.Interop.Bpf;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>A BPF map in the kernel; closing the fd frees it (unless something else holds it).</summary>
public sealed class BpfMap : IDisposable
{
    public SafeFileDescriptor Fd { get; }
    public BpfMapSpec Spec { get; }

    private BpfMap(SafeFileDescriptor fd, BpfMapSpec spec) { Fd = fd; Spec = spec; }

    public static BpfMap Create(BpfMapSpec spec)
    {
        long fd = BpfCalls.MapCreate(spec.Type, spec.KeySize, spec.ValueSize, spec.MaxEntries, spec.Flags, Encoding.ASCII.GetBytes(spec.Name));
        if (fd < 0) throw BpfError(Errno.Last, $"BPF_MAP_CREATE ({spec.Name})");
        return new BpfMap(new SafeFileDescriptor((int)fd), spec);
    }

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        if (key.Length != Spec.KeySize || value.Length != Spec.ValueSize) throw new ArgumentException($"Key/value sizes do not match map {Spec.Name}.");
        if (BpfCalls.MapUpdate(Fd.Fd, key, value, BpfCalls.BPF_ANY) < 0) throw BpfError(Errno.Last, $"BPF_MAP_UPDATE_ELEM ({Spec.Name})");
    }

    public byte[] Lookup(ReadOnlySpan<byte> key)
    {
        if (key.Length != Spec.KeySize) throw new ArgumentException($"Key size does not match map {Spec.Name}.");
        byte[] value = new byte[Spec.ValueSize];
        if (BpfCalls.MapLookup(Fd.Fd, key, value) < 0) throw BpfError(Errno.Last, $"BPF_MAP_LOOKUP_ELEM ({Spec.Name})");
        return value;
    }

    public void Dispose() => Fd.Dispose();

    /// <summary>EPERM from bpf() means a missing capability; name it.</summary>
    internal static LinuxTraceException BpfError(int errno, string call) => errno is Errno.EPERM or Errno.EACCES
        ? new TargetPermissionDeniedException(
            $"Permission denied: {call}. Loading eBPF programs needs root or CAP_BPF (with CAP_PERFMON for tracing programs); " +
            "check also /proc/sys/kernel/unprivileged_bpf_disabled.", "CAP_BPF")
        : Errno.ToException(errno, call);
}

/// <summary>A loaded BPF program.</summary>
public sealed class BpfProgram : IDisposable
{
    public SafeFileDescriptor Fd { get; }
    public string Name { get; }

    private BpfProgram(SafeFileDescriptor fd, string name) { Fd = fd; Name = name; }

    /// <summary>
    /// Loads instructions. A program the verifier rejects throws a BadInputFormatException whose
    /// message carries the verifier log (the load is retried with log_level 1 to capture it).
    /// </summary>
    public static BpfProgram Load(uint progType, ReadOnlySpan<byte> instructions, string license, string name)
    {
        if (instructions.Length == 0 || instructions.Length % BpfCalls.InsnSize != 0)
            throw new BadInputFormatException($"Program {name}: {instructions.Length} bytes is not a whole number of instructions.");
        byte[] lic = Encoding.ASCII.GetBytes(license + "\0");
        byte[] nameBytes = Encoding.ASCII.GetBytes(name);
        long fd = BpfCalls.ProgLoad(progType, instructions, lic, nameBytes, Span<byte>.Empty);
        if (fd >= 0) return new BpfProgram(new SafeFileDescriptor((int)fd), name);
        int errno = Errno.Last;
        if (errno is Errno.EPERM) throw BpfMap.BpfError(errno, $"BPF_PROG_LOAD ({name})");
        // Retry with the verifier's log; grow the buffer while the log does not fit (ENOSPC).
        for (int size = 1 << 20; size <= 1 << 26; size <<= 2)
        {
            byte[] log = new byte[size];
            fd = BpfCalls.ProgLoad(progType, instructions, lic, nameBytes, log);
            if (fd >= 0) return new BpfProgram(new SafeFileDescriptor((int)fd), name);   // passed on the retry
            int e = Errno.Last;
            if (e == Errno.ENOSPC) continue;
            int nul = Array.IndexOf(log, (byte)0);
            string text = Encoding.UTF8.GetString(log, 0, nul < 0 ? log.Length : nul).TrimEnd();
            throw new BadInputFormatException(
                $"The kernel's verifier rejected BPF program {name} ({Errno.Name(e)}). Verifier log:\n{text}",
                new NativeCallException("BPF_PROG_LOAD", e, name));
        }
        throw Errno.ToException(errno, $"BPF_PROG_LOAD ({name})");
    }

    /// <summary>The kernel's id for this program (what `bpftool prog show` lists).</summary>
    public uint Id
    {
        get
        {
            long id = BpfCalls.ProgId(Fd.Fd);
            Errno.Check(id, "BPF_OBJ_GET_INFO_BY_FD");
            return (uint)id;
        }
    }

    public void Dispose() => Fd.Dispose();
}

/// <summary>A BPF program attached to a tracepoint through a perf event; Dispose detaches.</summary>
public sealed class TracepointAttachment : IDisposable
{
    private readonly SafeFileDescriptor _perf;
    public string Tracepoint { get; }

    private TracepointAttachment(SafeFileDescriptor perf, string tracepoint) { _perf = perf; Tracepoint = tracepoint; }

    /// <summary>perf_event_open(PERF_TYPE_TRACEPOINT, id) on one CPU for all processes, PERF_EVENT_IOC_SET_BPF, ENABLE.</summary>
    public static TracepointAttachment Attach(BpfProgram program, string tracepoint)
    {
        int id = Tracefs.TracepointId(tracepoint);
        var attr = new PerfEvent.perf_event_attr
        {
            type = PerfEvent.PERF_TYPE_TRACEPOINT, config = (ulong)id, sample_period = 1,
            sample_type = PerfEvent.PERF_SAMPLE_RAW, wakeup_events = 1,
        };
        // pid -1, cpu 0: a BPF program on a tracepoint runs for every CPU (it hangs on the trace event, not the perf buffer).
        int fd = PerfEvent.Open(ref attr, -1, 0, -1, PerfEvent.PERF_FLAG_FD_CLOEXEC);
        if (fd < 0)
        {
            int e = Errno.Last;
            if (e is Errno.EPERM or Errno.EACCES)
                throw new TargetPermissionDeniedException(
                    $"Permission denied: perf_event_open on tracepoint {tracepoint}. Needs root or CAP_PERFMON " +
                    "(and a /proc/sys/kernel/perf_event_paranoid that allows it).", "CAP_PERFMON");
            throw Errno.ToException(e, "perf_event_open", context: tracepoint);
        }
        var perf = new SafeFileDescriptor(fd);
        try
        {
            Errno.Check(LibC.ioctl(fd, PerfEvent.PERF_EVENT_IOC_SET_BPF, program.Fd.Fd), "ioctl(PERF_EVENT_IOC_SET_BPF)", context: tracepoint);
            Errno.Check(LibC.ioctl(fd, PerfEvent.PERF_EVENT_IOC_ENABLE, 0), "ioctl(PERF_EVENT_IOC_ENABLE)", context: tracepoint);
        }
        catch
        {
            perf.Dispose();
            throw;
        }
        return new TracepointAttachment(perf, tracepoint);
    }

    public void Dispose() => _perf.Dispose();
}
