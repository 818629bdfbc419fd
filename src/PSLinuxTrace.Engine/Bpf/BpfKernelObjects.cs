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

    /// <summary>Per-CPU maps hold one value per possible CPU, each padded to 8 bytes (kernel/bpf/syscall.c, bpf_map_value_size).</summary>
    public bool IsPerCpu => Spec.Type is BpfCalls.BPF_MAP_TYPE_PERCPU_ARRAY or BpfCalls.BPF_MAP_TYPE_PERCPU_HASH;

    /// <summary>The bytes one lookup returns: the value, or for a per-CPU map every CPU's value at a stride of <see cref="PerCpuStride"/>.</summary>
    public int LookupSize => IsPerCpu ? PerCpuStride * PossibleCpus.Count : (int)Spec.ValueSize;

    public int PerCpuStride => ((int)Spec.ValueSize + 7) & ~7;

    public byte[] Lookup(ReadOnlySpan<byte> key) =>
        TryLookup(key) ?? throw BpfError(Errno.ENOENT, $"BPF_MAP_LOOKUP_ELEM ({Spec.Name})");

    /// <summary>The value of <paramref name="key"/>, or null when the map has no such key.</summary>
    public byte[]? TryLookup(ReadOnlySpan<byte> key)
    {
        if (key.Length != Spec.KeySize) throw new ArgumentException($"Key size does not match map {Spec.Name}.");
        byte[] value = new byte[LookupSize];
        if (BpfCalls.MapLookup(Fd.Fd, key, value) >= 0) return value;
        if (Errno.Last == Errno.ENOENT) return null;
        throw BpfError(Errno.Last, $"BPF_MAP_LOOKUP_ELEM ({Spec.Name})");
    }

    /// <summary>Removes <paramref name="key"/>; false when it was not there.</summary>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        if (key.Length != Spec.KeySize) throw new ArgumentException($"Key size does not match map {Spec.Name}.");
        if (BpfCalls.MapDelete(Fd.Fd, key) >= 0) return true;
        if (Errno.Last == Errno.ENOENT) return false;
        throw BpfError(Errno.Last, $"BPF_MAP_DELETE_ELEM ({Spec.Name})");
    }

    /// <summary>
    /// Every key of a hash map, as BPF_MAP_GET_NEXT_KEY walks them. Keys the programs add or delete
    /// meanwhile may or may not be seen (bpf(2)); a deleted current key restarts the walk from the start.
    /// </summary>
    public List<byte[]> Keys(int limit = int.MaxValue)
    {
        var keys = new List<byte[]>();
        byte[] key = [];
        while (keys.Count < limit)
        {
            byte[] next = new byte[Spec.KeySize];
            if (BpfCalls.MapNextKey(Fd.Fd, key, next) < 0)
            {
                if (Errno.Last == Errno.ENOENT) break;
                throw BpfError(Errno.Last, $"BPF_MAP_GET_NEXT_KEY ({Spec.Name})");
            }
            keys.Add(next);
            key = next;
        }
        return keys;
    }

    /// <summary>Whether a hash map holds no key at all.</summary>
    public bool IsEmpty => Keys(1).Count == 0;

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
    public static BpfProgram Load(uint progType, ReadOnlySpan<byte> instructions, string license, string name) =>
        Load(progType, instructions, license, name, []);

    /// <summary>
    /// Loads a program of several functions (<paramref name="functions"/>: where each starts, the program
    /// itself at 0): their BTF is loaded first and passed as func_info, which the verifier requires of
    /// a program with callbacks.
    /// </summary>
    public static BpfProgram Load(uint progType, ReadOnlySpan<byte> instructions, string license, string name, IReadOnlyList<(int Instruction, string Name)> functions)
    {
        if (functions.Count <= 1) return Load(progType, instructions, license, name, null, []);
        // bpftool names a program with BTF after its first function: give it the program's own name (pslt_...).
        var (btf, funcInfo) = FunctionBtf.Build([.. functions.Select(f => f.Instruction == 0 ? (f.Instruction, name) : f)]);
        long btfFd = BpfCalls.BtfLoad(btf, Span<byte>.Empty);
        if (btfFd < 0)
        {
            int e = Errno.Last;
            if (e is Errno.EPERM) throw BpfMap.BpfError(e, $"BPF_BTF_LOAD ({name})");
            byte[] log = new byte[1 << 16];
            BpfCalls.BtfLoad(btf, log);
            int nul = Array.IndexOf(log, (byte)0);
            throw new BadInputFormatException($"The kernel rejected the BTF of BPF program {name}'s functions ({Errno.Name(e)}): {Encoding.UTF8.GetString(log, 0, nul < 0 ? log.Length : nul).TrimEnd()}");
        }
        using var btfHandle = new SafeFileDescriptor((int)btfFd);   // the loaded program keeps its own reference
        return Load(progType, instructions, license, name, btfHandle, funcInfo);
    }

    private static BpfProgram Load(uint progType, ReadOnlySpan<byte> instructions, string license, string name, SafeFileDescriptor? btf, byte[] funcInfo)
    {
        if (instructions.Length == 0 || instructions.Length % BpfCalls.InsnSize != 0)
            throw new BadInputFormatException($"Program {name}: {instructions.Length} bytes is not a whole number of instructions.");
        byte[] lic = Encoding.ASCII.GetBytes(license + "\0");
        byte[] nameBytes = Encoding.ASCII.GetBytes(name);
        int btfFd = btf?.Fd ?? -1;
        long fd = LoadRetryingSignals(progType, instructions, lic, nameBytes, Span<byte>.Empty, btfFd, funcInfo);
        if (fd >= 0) return new BpfProgram(new SafeFileDescriptor((int)fd), name);
        int errno = Errno.Last;
        if (errno is Errno.EPERM) throw BpfMap.BpfError(errno, $"BPF_PROG_LOAD ({name})");
        // Retry with the verifier's log; grow the buffer while the log does not fit (ENOSPC).
        for (int size = 1 << 20; size <= 1 << 26; size <<= 2)
        {
            byte[] log = new byte[size];
            fd = LoadRetryingSignals(progType, instructions, lic, nameBytes, log, btfFd, funcInfo);
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

    // The verifier gives up with EAGAIN when a signal is pending on the loading thread (kernel/bpf/verifier.c
    // do_check: signal_pending), which a SIGCHLD to this process can be; libbpf retries it the same way.
    private static long LoadRetryingSignals(uint progType, ReadOnlySpan<byte> instructions, byte[] license, byte[] name, Span<byte> log, int btfFd, byte[] funcInfo)
    {
        for (int attempt = 1; ; attempt++)
        {
            long fd = BpfCalls.ProgLoad(progType, instructions, license, name, log, btfFd, funcInfo);
            if (fd >= 0 || Errno.Last != Errno.EAGAIN || attempt == 5) return fd;
        }
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

/// <summary>
/// A BPF_PROG_TYPE_RAW_TRACEPOINT program attached to a raw tracepoint (BPF_RAW_TRACEPOINT_OPEN, Linux
/// 4.17): the program gets the tracepoint's own arguments (a struct pt_regs * and the syscall number for
/// sys_enter), without the perf record a classic tracepoint builds first. Dispose closes the link, which detaches.
/// </summary>
public sealed class RawTracepointAttachment : IDisposable
{
    private readonly SafeFileDescriptor _link;
    public string Tracepoint { get; }

    private RawTracepointAttachment(SafeFileDescriptor link, string tracepoint) { _link = link; Tracepoint = tracepoint; }

    /// <param name="tracepoint">the tracepoint's name without its category: "sys_enter", "sched_process_fork"</param>
    public static RawTracepointAttachment Attach(BpfProgram program, string tracepoint)
    {
        long fd = BpfCalls.RawTracepointOpen(Encoding.ASCII.GetBytes(tracepoint + "\0"), program.Fd.Fd);
        if (fd >= 0) return new RawTracepointAttachment(new SafeFileDescriptor((int)fd), tracepoint);
        int e = Errno.Last;
        if (e is Errno.EPERM or Errno.EACCES)
            throw new TargetPermissionDeniedException(
                $"Permission denied: BPF_RAW_TRACEPOINT_OPEN on {tracepoint}. Needs root or CAP_BPF with CAP_PERFMON.", "CAP_PERFMON");
        if (e == Errno.ENOENT) throw new UnsupportedFeatureException($"raw tracepoint {tracepoint}", "4.17", "the kernel has no tracepoint of that name");
        throw Errno.ToException(e, "BPF_RAW_TRACEPOINT_OPEN", context: tracepoint);
    }

    public void Dispose() => _link.Dispose();
}

/// <summary>The CPUs the kernel may ever run (per-CPU maps hold a value for each; scratch maps are indexed by CPU id).</summary>
public static class PossibleCpus
{
    private static readonly Lazy<int> CountOnce = new(Read);

    /// <summary>Highest possible CPU id + 1, from /sys/devices/system/cpu/possible ("0-3").</summary>
    public static int Count => CountOnce.Value;

    private static int Read()
    {
        try
        {
            string s = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();
            int max = 0;
            foreach (string part in s.Split(','))
            {
                string last = part.Contains('-') ? part[(part.IndexOf('-') + 1)..] : part;
                max = Math.Max(max, int.Parse(last, System.Globalization.CultureInfo.InvariantCulture));
            }
            return max + 1;
        }
        catch (Exception ex) when (ex is IOException or FormatException or UnauthorizedAccessException)
        {
            return Math.Max(Environment.ProcessorCount, (int)LibC.sysconf(LibC._SC_NPROCESSORS_CONF));
        }
    }
}
