using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Text;

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

/// <summary>
/// The eBPF exec watcher: loads src/bpf/exec.bpf.o with our own loader (maps created, map
/// relocations applied, programs verified and attached to the execve/execveat tracepoints), reads
/// the ring buffer on its own thread, joins each entry record with its exit record, and writes
/// <see cref="ExecEvent"/>s to a bounded channel. The contract callers rely on: Stop (and Dispose)
/// ends the reader thread, then detaches and closes every BPF program, map, link and fd, so nothing
/// stays in the kernel; the counters stay readable (as of that moment) through <see cref="Summary"/>.
/// </summary>
public sealed class ExecWatcher : IDisposable
{
    public const string ObjectResource = "exec.bpf.o";
    private const uint RecEnter = 1, RecExit = 2;
    private const uint FArgsTruncated = 1, FEnvTruncated = 2, FArgsFault = 4, FExecveat = 8;
    // struct exec_event in exec.bpf.c: 96-byte header, filename, argv right after it; envp at HeaderSize + PathCap + ArgsSlot.
    private const int HeaderSize = 96, PathCap = 4096, ArgsCap = 32768, ArgsSlot = 2 * ArgsCap;
    private const int ConfigSize = 64;
    // How long an entry waits for its exit record before it is written with Result null. An exec can
    // take seconds on a loaded machine (loading the binary), so this is generous; the execs behind
    // one whose exit never comes (a caller killed mid-exec) wait that long too, to keep time order.
    private static readonly TimeSpan ExitWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan BatchDelay = TimeSpan.FromMilliseconds(20);

    private readonly ILogger _log;
    private readonly ExecWatchOptions _options;
    private readonly List<IDisposable> _kernelObjects = [];
    private readonly List<BpfProgram> _programs = [];
    private readonly BpfMap _events, _counters;
    private readonly RingBufferReader _ring;
    private readonly Glob[]? _names;
    private readonly long _bootToRealtimeNs;
    private readonly Channel<ExecEvent> _channel = Channel.CreateBounded<ExecEvent>(new BoundedChannelOptions(65536) { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _stop = new();
    private Thread? _thread;
    private ulong _lostReported;
    private long _emitted;
    private readonly Stopwatch _clock = new();

    /// <summary>The kernel ids of the loaded programs (for `bpftool prog show id N`).</summary>
    public IReadOnlyList<uint> ProgramIds { get; }

    private ExecWatcher(ExecWatchOptions options, ILogger log)
    {
        _options = options;
        _log = log;
        if (options.BufferSize < 4096 || (options.BufferSize & (options.BufferSize - 1)) != 0)
            throw new ArgumentException($"The buffer size must be a power of two of at least 4096 bytes; got {options.BufferSize}.");
        _names = options.Name?.Select(n => new Glob(n)).ToArray();
        _bootToRealtimeNs = LibC.ClockNs(LibC.CLOCK_REALTIME) - LibC.ClockNs(LibC.CLOCK_BOOTTIME);
        try
        {
            Tracefs.Root();
            Btf btf = Btf.LoadVmlinux();
            byte[] config = BuildConfig(btf, options);
            var obj = BpfObject.Parse(BpfObject.ReadEmbedded(ObjectResource), ObjectResource);

            var maps = new Dictionary<string, BpfMap>(StringComparer.Ordinal);
            foreach (BpfMapSpec spec in obj.Maps)
            {
                BpfMapSpec s = spec;
                if (spec.Name == "events") s = spec with { MaxEntries = (uint)options.BufferSize };
                if (spec.Name == "scratch") s = spec with { MaxEntries = (uint)Math.Max(1, PossibleCpus()) };
                BpfMap m = BpfMap.Create(s);
                _kernelObjects.Add(m);
                maps[spec.Name] = m;
                _log.LogDebug("Created BPF map {Name} (type {Type}, {Entries} entries of {Size} bytes).", s.Name, s.Type, s.MaxEntries, s.ValueSize);
            }
            _events = maps.GetValueOrDefault("events") ?? throw new BadInputFormatException($"{ObjectResource} has no 'events' map.");
            _counters = maps.GetValueOrDefault("counters") ?? throw new BadInputFormatException($"{ObjectResource} has no 'counters' map.");
            BpfMap configMap = maps.GetValueOrDefault("config") ?? throw new BadInputFormatException($"{ObjectResource} has no 'config' map.");
            if (configMap.Spec.ValueSize != ConfigSize) throw new BadInputFormatException($"{ObjectResource}: config map value is {configMap.Spec.ValueSize} bytes, expected {ConfigSize}.");
            configMap.Update(new byte[4], config);

            if (_events.Spec.Type != Bpf.BPF_MAP_TYPE_RINGBUF) throw new BadInputFormatException($"Map {_events.Spec.Name} of the BPF object is not a ring buffer.");
            _ring = new RingBufferReader(_events.Fd, _events.Spec.MaxEntries);
            _kernelObjects.Add(_ring);

            var loaded = new List<(BpfProgram Program, string Tracepoint)>();
            foreach (BpfProgramSpec prog in obj.Programs)
            {
                byte[] insns = (byte[])prog.Instructions.Clone();
                foreach (BpfMapRelocation r in prog.MapRelocations)
                {
                    if (!maps.TryGetValue(r.MapName, out BpfMap? m)) throw new BadInputFormatException($"{ObjectResource}: {prog.Name} refers to unknown map {r.MapName}.");
                    int at = r.InstructionIndex * Bpf.InsnSize;
                    insns[at + 1] = (byte)((insns[at + 1] & 0x0f) | (Bpf.BPF_PSEUDO_MAP_FD << 4));   // src_reg = BPF_PSEUDO_MAP_FD
                    BinaryPrimitives.WriteInt32LittleEndian(insns.AsSpan(at + 4), m.Fd.Fd);            // imm = map fd
                }
                BpfProgram p = BpfProgram.Load(Bpf.BPF_PROG_TYPE_TRACEPOINT, insns, obj.License, "pslt_" + prog.Name);
                _kernelObjects.Add(p);
                _programs.Add(p);
                string tp = prog.Tracepoint ?? throw new BadInputFormatException($"{ObjectResource}: program {prog.Name} is not in a tracepoint/ section.");
                loaded.Add((p, tp));
                _log.LogDebug("Loaded {Program} ({Count} instructions) for {Tracepoint}.", prog.Name, insns.Length / 8, tp);
            }
            // Attach only once every program passed the verifier (which can take a while under load), and the
            // exit programs before the entry ones: every exec whose entry is recorded then has its exit recorded.
            foreach (var (p, tp) in loaded.OrderBy(l => l.Tracepoint.Contains("/sys_exit_", StringComparison.Ordinal) ? 0 : 1))
            {
                _kernelObjects.Add(TracepointAttachment.Attach(p, tp));
                _log.LogDebug("Attached {Program} to {Tracepoint}.", p.Name, tp);
            }
            ProgramIds = _programs.Select(p => p.Id).ToArray();
        }
        catch
        {
            DisposeKernelObjects();
            throw;
        }
    }

    /// <summary>Loads and attaches; throws typed engine exceptions (PermissionDenied naming CAP_BPF, UnsupportedFeature, ...).</summary>
    public static ExecWatcher Open(ExecWatchOptions options, ILogger log) => new(options, log);

    /// <summary>The events, as the reader thread joins them; completes on Count, Timeout, Stop/Dispose, or with the error that ended the watch.</summary>
    public ChannelReader<ExecEvent> Events => _channel.Reader;

    /// <summary>Starts the reader thread (once).</summary>
    public ChannelReader<ExecEvent> Start(CancellationToken cancel = default)
    {
        if (_thread is not null) return _channel.Reader;
        if (cancel.CanBeCanceled) cancel.Register(() => { try { _stop.Cancel(); } catch (ObjectDisposedException) { } });
        _clock.Start();
        _thread = new Thread(Run) { IsBackground = true, Name = "Watch-Exec ring buffer" };
        _thread.Start();
        return _channel.Reader;
    }

    /// <summary>Ring buffer reservation failures counted by the BPF programs (events the kernel could not hand over).</summary>
    public ulong LostEvents => _finalCounters?.Lost ?? ReadCounter(0);

    /// <summary>argv/envp strings the kernel could not read (page not present); those events are marked Truncated.</summary>
    public ulong FaultedReads => _finalCounters?.Faulted ?? ReadCounter(1);

    // The counters as they were when Stop closed the maps.
    private (ulong Lost, ulong Faulted)? _finalCounters;
    private readonly object _stopGate = new();

    public ExecWatchSummary Summary => new(Interlocked.Read(ref _emitted), LostEvents, FaultedReads, _clock.Elapsed);

    private ulong ReadCounter(int index)
    {
        byte[] key = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(key, index);
        return BinaryPrimitives.ReadUInt64LittleEndian(_counters.Lookup(key));
    }

    private void Run()
    {
        var queue = new ExecEventQueue(ExitWait);
        var ready = new List<ExecEvent>();
        TimeSpan lastLostCheck = TimeSpan.Zero;
        Exception? error = null;
        RingBufferReader.RecordHandler handler = rec => OnRecord(rec, queue);
        CancellationToken stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (_options.Timeout is { } t && _clock.Elapsed >= t) break;
                // The kernel wakes us for the first record after we caught up. Letting records
                // gather for a few milliseconds first turns a wake-up per exec (two records, and a
                // cross-CPU wake-up costs 55-105 us here) into one per batch, at the price of that latency.
                if (_ring.Wait(100)) stop.WaitHandle.WaitOne(BatchDelay);
                _ring.Consume(handler);
                TimeSpan now = _clock.Elapsed;
                queue.Release(now, all: false, ready);
                if (!Emit(ready, stop)) break;
                if (now - lastLostCheck > TimeSpan.FromMilliseconds(250)) { CheckLost(); lastLostCheck = now; }
            }
            // Ended by -Timeout or -Count (not by Stop): hand over what is already in the ring and
            // the entries still waiting for an exit (in order, result unknown). After Stop nobody
            // reads any more, so skip it.
            if (!stop.IsCancellationRequested)
            {
                _ring.Consume(handler);
                queue.Release(_clock.Elapsed, all: true, ready);
                Emit(ready, stop);
            }
            CheckLost();
        }
        catch (OperationCanceledException) { }
        catch (Exception ex) { error = ex; }
        _channel.Writer.TryComplete(error);
    }

    private void CheckLost()
    {
        ulong lost = LostEvents;
        if (lost > _lostReported)
        {
            _log.LogWarning("{New} exec record(s) lost because the ring buffer was full ({Total} in total); use -BufferSize to grow it (now {Size} bytes).",
                lost - _lostReported, lost, _options.BufferSize);
            _lostReported = lost;
        }
    }

    /// <summary>Writes ready events (already in time order); false once Count is reached.</summary>
    private bool Emit(List<ExecEvent> ready, CancellationToken stop)
    {
        foreach (ExecEvent e in ready)
        {
            if (_options.Count > 0 && Interlocked.Read(ref _emitted) >= _options.Count) { ready.Clear(); return false; }
            // A full channel (the pipeline is slower than the execs) blocks here; the ring then
            // fills and the kernel counts what it cannot hold, which CheckLost reports.
            while (!_channel.Writer.TryWrite(e))
                _channel.Writer.WaitToWriteAsync(stop).AsTask().GetAwaiter().GetResult();
            Interlocked.Increment(ref _emitted);
        }
        ready.Clear();
        return !(_options.Count > 0 && Interlocked.Read(ref _emitted) >= _options.Count);
    }

    private void OnRecord(ReadOnlySpan<byte> rec, ExecEventQueue queue)
    {
        if (rec.Length < 4) return;
        uint kind = U32(rec, 0);
        if (kind == RecEnter && rec.Length > HeaderSize)
        {
            ExecEvent e = ParseEnter(rec);
            if (_names is not null && !MatchesName(e.Filename)) return;
            queue.Enter(e, _clock.Elapsed);
        }
        else if (kind == RecExit && rec.Length >= 32)
        {
            queue.Exit((int)U32(rec, 4), (int)U32(rec, 8), BinaryPrimitives.ReadInt64LittleEndian(rec[16..]));
        }
    }

    private bool MatchesName(string filename)
    {
        string last = filename[(filename.LastIndexOf('/') + 1)..];
        foreach (Glob g in _names!)
            if (g.IsMatch(g.Pattern.Contains('/') ? filename : last)) return true;
        return false;
    }

    private ExecEvent ParseEnter(ReadOnlySpan<byte> rec)
    {
        uint flags = U32(rec, 4);
        long bootNs = BinaryPrimitives.ReadInt64LittleEndian(rec[8..]);
        int fnameLen = (int)Math.Min(U32(rec, 64), PathCap);
        int argsLen = (int)Math.Min(U32(rec, 68), ArgsCap);
        int envLen = (int)Math.Min(U32(rec, 72), ArgsCap);
        int argsAt = HeaderSize + fnameLen, envAt = HeaderSize + PathCap + ArgsSlot;
        ReadOnlySpan<byte> args = argsAt + argsLen <= rec.Length ? rec.Slice(argsAt, argsLen) : default;
        ReadOnlySpan<byte> env = envLen > 0 && envAt + envLen <= rec.Length ? rec.Slice(envAt, envLen) : default;
        return new ExecEvent
        {
            Timestamp = DateTime.UnixEpoch.AddTicks((bootNs + _bootToRealtimeNs) / 100).ToLocalTime(),
            Pid = (int)U32(rec, 16),
            Tid = (int)U32(rec, 20),
            ParentId = (int)U32(rec, 24),
            UserId = U32(rec, 28),
            GroupId = U32(rec, 32),
            PidNamespace = U32(rec, 44),
            CgroupId = BinaryPrimitives.ReadUInt64LittleEndian(rec[48..]),
            DirectoryFd = (flags & FExecveat) != 0 ? BinaryPrimitives.ReadInt32LittleEndian(rec[56..]) : 0,
            AtFlags = U32(rec, 60),
            Comm = CString(rec.Slice(80, 16)),
            Syscall = (flags & FExecveat) != 0 ? ExecSyscall.Execveat : ExecSyscall.Execve,
            Filename = CString(rec.Slice(HeaderSize, fnameLen)),
            Argv = SplitStrings(args),
            Truncated = (flags & (FArgsTruncated | FArgsFault)) != 0,
            Environment = _options.IncludeEnvironment ? SplitStrings(env) : null,
            EnvironmentTruncated = (flags & FEnvTruncated) != 0,
        };
    }

    private static uint U32(ReadOnlySpan<byte> b, int off) => BinaryPrimitives.ReadUInt32LittleEndian(b[off..]);

    private static string CString(ReadOnlySpan<byte> b)
    {
        int nul = b.IndexOf((byte)0);
        return ExecText.Decode(nul < 0 ? b : b[..nul]);
    }

    /// <summary>NUL-terminated strings back to back (the last one may be cut, without its NUL).</summary>
    internal static string[] SplitStrings(ReadOnlySpan<byte> b)
    {
        var list = new List<string>();
        while (!b.IsEmpty)
        {
            int nul = b.IndexOf((byte)0);
            if (nul < 0) { list.Add(ExecText.Decode(b)); break; }
            list.Add(ExecText.Decode(b[..nul]));
            b = b[(nul + 1)..];
        }
        return list.ToArray();
    }

    /// <summary>The config map's value (struct config in exec.bpf.c): BTF-resolved offsets, then filters.</summary>
    internal static byte[] BuildConfig(Btf btf, ExecWatchOptions o)
    {
        uint[] v =
        [
            btf.MemberOffset("task_struct", "real_parent"),
            btf.MemberOffset("task_struct", "tgid"),
            btf.MemberOffset("task_struct", "thread_pid"),
            btf.MemberOffset("pid", "level"),
            btf.MemberOffset("pid", "numbers"),
            btf.StructSize("upid"),
            btf.MemberOffset("upid", "ns"),
            btf.MemberOffset("pid_namespace", "ns.inum"),
            o.UserId is null ? 0u : 1u, o.UserId ?? 0,
            o.ParentId is null ? 0u : 1u, (uint)(o.ParentId ?? 0),
            o.PidNamespace is null ? 0u : 1u, o.PidNamespace ?? 0,
            o.IncludeEnvironment ? 1u : 0u, 0,
        ];
        byte[] bytes = new byte[ConfigSize];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), v[i]);
        return bytes;
    }

    /// <summary>Number of possible CPUs (/sys/devices/system/cpu/possible, "0-3"): the scratch map is indexed by CPU id.</summary>
    private static int PossibleCpus()
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

    /// <summary>The inode number of a process's pid namespace (stat of /proc/PID/ns/pid).</summary>
    public static uint PidNamespaceOf(int pid)
    {
        string link = $"/proc/{pid}/ns/pid";
        try
        {
            string? target = new FileInfo(link).LinkTarget;
            if (target is null && !Directory.Exists($"/proc/{pid}")) throw new ProcessNotFoundException(pid);
            // "pid:[4026531836]"
            if (target is not null && target.StartsWith("pid:[", StringComparison.Ordinal) && target.EndsWith(']'))
                return uint.Parse(target[5..^1], System.Globalization.CultureInfo.InvariantCulture);
            throw new BadInputFormatException($"Unexpected target of {link}: {target}");
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ProcessNotFoundException(pid);
        }
        catch (UnauthorizedAccessException)
        {
            throw Access.AccessDiagnosis.Explain(pid, $"reading {link}", Errno.EACCES);
        }
        catch (IOException) when (!Directory.Exists($"/proc/{pid}"))
        {
            throw new ProcessNotFoundException(pid);
        }
    }

    /// <summary>
    /// Stops the reader thread (the channel completes), then closes every BPF object: after Stop
    /// returns, nothing of the watch is left in the kernel. Safe to call more than once.
    /// </summary>
    public void Stop()
    {
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        lock (_stopGate)
        {
            if (_finalCounters is not null) return;
            // The reader wakes at least every 100 ms (ring wait) and its channel writes are cancellable.
            if (_thread is not null && !_thread.Join(TimeSpan.FromSeconds(10)))
            {
                // Unmapping the ring under a thread that reads it would crash the process: leave the
                // objects to the process's exit instead.
                _log.LogWarning("The Watch-Exec reader thread did not stop within 10 s; its BPF objects stay open until this process exits.");
                return;
            }
            try { _finalCounters = (ReadCounter(0), ReadCounter(1)); }
            catch (LinuxTraceException) { _finalCounters = (0, 0); }
            DisposeKernelObjects();
            _channel.Writer.TryComplete();
        }
    }

    private void DisposeKernelObjects()
    {
        // Detach first (attachments were added after their programs), then programs, ring, maps.
        for (int i = _kernelObjects.Count - 1; i >= 0; i--) _kernelObjects[i].Dispose();
        _kernelObjects.Clear();
    }

    public void Dispose()
    {
        Stop();
        _stop.Dispose();
    }
}

/// <summary>Bytes from the kernel to strings: UTF-8, with each byte that is not valid UTF-8 shown as \xNN (as strace does).</summary>
public static class ExecText
{
    private static readonly UTF8Encoding Strict = new(false, true);

    public static string Decode(ReadOnlySpan<byte> b)
    {
        try { return Strict.GetString(b); }
        catch (DecoderFallbackException) { }
        var sb = new StringBuilder(b.Length + 8);
        while (!b.IsEmpty)
        {
            if (System.Text.Rune.DecodeFromUtf8(b, out System.Text.Rune r, out int used) == System.Buffers.OperationStatus.Done)
            {
                sb.Append(r.ToString());
                b = b[used..];
            }
            else
            {
                sb.Append("\\x").Append(b[0].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
                b = b[1..];
            }
        }
        return sb.ToString();
    }
}
