using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging;
using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Syscalls;
using static PSLinuxTrace.Engine.Tracing.Bpf.BpfRecords;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>The records of the ring buffer, turned into the ptrace engine's events.</summary>
public sealed partial class BpfSyscallTracer
{
    private const int CloneVfork = 0x4000, Sigchld = 17, ResultArgument = 6;
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private readonly HashSet<int> _live = new();                 // tasks we saw start and not yet exit
    private readonly Dictionary<int, string> _comm = new();      // tgid -> comm
    private readonly Dictionary<int, (long EnterNs, List<Copy> Copies)> _entries = new();   // tid -> the REC_ENTER of its call in flight
    private readonly Dictionary<int, List<Copy>> _execImages = new();   // tid -> what its exec record copied, for its execve
    private readonly uint[] _lastSequence;                       // per CPU: the last record number seen
    private ulong _sequence;
    private long _lostTotal;
    private ulong _reportedInflightFull, _reportedTracedFull, _reportedEntryLost;

    private void OnRecord(ReadOnlySpan<byte> rec)
    {
        if (rec.Length < HeaderSize) return;
        RecordHeader h = Header(rec);
        if (rec.Length < MinimumSize(h.Kind)) return;
        if (h.Kind != RecordKind.Enter) CheckSequence(h);
        switch (h.Kind)
        {
            case RecordKind.Enter:
                _entries[h.Tid] = (h.BootNs, Copies(rec[EnterSize..], (int)U32(rec, 28)));
                break;
            case RecordKind.Syscall: OnSyscall(h, rec); break;
            case RecordKind.Fork: OnFork(h, rec); break;
            case RecordKind.Exec: OnExec(h, rec); break;
            case RecordKind.Exit: OnExit(h, rec); break;
            case RecordKind.Signal: OnSignal(h, rec); break;
        }
    }

    /// <summary>A gap in a CPU's record numbers is records the ring buffer could not take: said where it shows.</summary>
    private void CheckSequence(in RecordHeader h)
    {
        if ((uint)h.Cpu >= (uint)_lastSequence.Length) return;
        uint gap = h.Sequence - _lastSequence[h.Cpu] - 1;
        if (gap >= 1u << 31) return;   // older than the last one seen (cannot happen with preemption off): keep counting from the newest
        if (gap > 0) EmitLost(h.Cpu, gap, Time(h.BootNs));
        _lastSequence[h.Cpu] = h.Sequence;
    }

    private void EmitLost(int cpu, long count, DateTime when)
    {
        Emit(new LostEventsEvent { Timestamp = when, Count = count, Cpu = cpu, Sequence = _sequence + 1 });
        _sequence += (ulong)count;
        if (_lostTotal == 0)
            _log.LogWarning("Events were lost: the ring buffer ({Size} bytes) was full; LostEventsEvent objects in the output say where and how many. -BufferSize sets its size.", _options.BufferSize);
        _lostTotal += count;
    }

    private DateTime Time(long bootNs) => DateTime.UnixEpoch.AddTicks((bootNs + _bootToRealtimeNs) / 100);

    private string Comm(int tgid) => _comm.TryGetValue(tgid, out string? c) ? c : "";

    private void OnSyscall(in RecordHeader h, ReadOnlySpan<byte> rec)
    {
        var (nr, copiesLength, exitNs, args, ret) = Syscall(rec);
        List<Copy> copies = [];
        if (_entries.Remove(h.Tid, out var entry) && entry.EnterNs == h.BootNs) copies = entry.Copies;
        if (copiesLength > 0) Copies(rec[SyscallSize..], copiesLength, copies);
        if (_execImages.Remove(h.Tid, out var image) && _arch.Name(nr) is "execve" or "execveat")
            ExecveCopies.Complete(_arch.Name(nr), args, copies, image);
        bool unfinished = (h.Flags & RecordHeader.Unfinished) != 0;
        Emit(Decode(h.Pid, h.Tid, nr, args, ret, unfinished, copies, Time(h.BootNs), TimeSpan.FromTicks(Math.Max(0, exitNs - h.BootNs) / 100)));
    }

    private SyscallEvent Decode(int pid, int tid, int nr, ulong[] args, long ret, bool unfinished, List<Copy> copies, DateTime start, TimeSpan duration)
    {
        string name = _arch.Name(nr);
        bool failed = !unfinished && ret is >= -4095 and < 0;
        string[] arguments;
        string result;
        if (!_options.DecodeArguments)
        {
            arguments = [];
            result = unfinished ? "?" : failed ? $"-1 {Errno.Name((int)-ret)}" : ret.ToString();
        }
        else
        {
            var view = new CopiedTracee(tid, copies, failed && ret == -Errno.EFAULT, _fds);
            string?[] entry = _decoder.DecodeEntry(view, name, args);
            if (unfinished)
            {
                arguments = entry.Select(a => a ?? "?").ToArray();
                result = "?";
            }
            else
            {
                if (!failed) LearnOpenedPath(view, name, pid, tid, args, copies);
                arguments = _decoder.DecodeExit(view, name, args, entry, ret, failed);
                result = _decoder.FormatResult(view, name, ret, failed);
            }
        }
        return new SyscallEvent
        {
            Timestamp = start, Pid = pid, Tid = tid, ProcessName = Comm(pid), Name = name, Number = nr,
            Arguments = arguments, RawArguments = args, ReturnValue = unfinished ? null : ret, Result = result,
            Errno = failed ? Errno.Name((int)-ret) : null, Duration = duration,
            Unfinished = unfinished && !SyscallSignatures.NeverReturns(name), Sequence = ++_sequence,
        };
    }

    /// <summary>An open() that returned an fd: the path it was given names the fd's file, once checked (see <see cref="FdPathResolver"/>).</summary>
    private void LearnOpenedPath(CopiedTracee view, string name, int pid, int tid, ulong[] args, List<Copy> copies)
    {
        int pathArg = name switch { "open" or "creat" => 0, "openat" or "openat2" => 1, _ => -1 };
        if (pathArg < 0) return;
        Copy? result = copies.FirstOrDefault(c => c.Kind == CopyKind.Fd && c.Argument == ResultArgument);
        if (result is null || result.Identity.Inode == 0) return;
        string path;
        try { path = StrictUtf8.GetString(view.ReadCString(args[pathArg], BpfSyscallObject.PathMax, out bool cut)); if (cut) return; }
        catch (Exception ex) when (ex is TraceeMemoryUnavailableException or DecoderFallbackException) { return; }
        const ulong ONoFollow = 0x20000;
        ulong flags = name switch { "open" => args[1], "openat" => args[2], _ => 0 };
        long dirFd = pathArg == 1 ? (int)args[0] : FdPathResolver.AtFdCwd;
        _fds.LearnFromOpen(tid, path, dirFd, (flags & ONoFollow) == 0, result.Identity);
    }

    private void OnFork(in RecordHeader h, ReadOnlySpan<byte> rec)
    {
        int child = I32(rec, 24), childTgid = I32(rec, 28), parentNr = I32(rec, 32), exitSignal = I32(rec, 36);
        ulong cloneFlags = U64(rec, 40);
        string comm = CString(rec.Slice(48, 16));
        _live.Add(child);
        _comm.TryAdd(childTgid, comm);
        // As kernel_clone picks the ptrace event: CLONE_VFORK, else an exit signal other than SIGCHLD is a clone.
        string parentCall = parentNr >= 0 ? _arch.Name(parentNr) : "";
        bool vfork = parentCall == "vfork" || (parentCall is "clone" or "clone3" && (cloneFlags & CloneVfork) != 0);
        ProcessStartKind kind = vfork ? ProcessStartKind.VFork
            : exitSignal != Sigchld ? (childTgid == h.Pid ? ProcessStartKind.Thread : ProcessStartKind.Clone)
            : ProcessStartKind.Fork;
        Emit(new ProcessStartEvent
        {
            Timestamp = Time(h.BootNs), Pid = childTgid, Tid = child, ProcessName = Comm(childTgid), Kind = kind, ParentTid = h.Tid,
            Engine = TraceEngine.Bpf, Sequence = ++_sequence,
        });
    }

    private void OnExec(in RecordHeader h, ReadOnlySpan<byte> rec)
    {
        int former = I32(rec, 24);
        var exe = new FileIdentity(U64(rec, 32), U32(rec, 40));
        string comm = CString(rec.Slice(48, 16));
        List<Copy> copies = Copies(rec[ExecSize..], (int)U32(rec, 28));
        if (former != h.Tid)
        {
            // A non-leader's execve: it now has the leader's tid, and so has its call in flight.
            _live.Remove(former);
            if (_entries.Remove(former, out var e)) _entries[h.Tid] = e;
        }
        _live.Add(h.Tid);
        _comm[h.Pid] = comm;
        _execImages[h.Tid] = copies;
        Emit(new ProcessStartEvent
        {
            Timestamp = Time(h.BootNs), Pid = h.Pid, Tid = h.Tid, ProcessName = comm, Kind = ProcessStartKind.Exec, ParentTid = former,
            ExecutablePath = ExecutablePath(h.Tid, exe, copies), Engine = TraceEngine.Bpf, Sequence = ++_sequence,
        });
    }

    /// <summary>/proc/PID/exe while it still names the program that was exec'd, else the canonical form of the filename execve got, checked the same way.</summary>
    private static string? ExecutablePath(int tid, FileIdentity exe, List<Copy> copies)
    {
        string link = $"/proc/{tid}/exe";
        if (LiveTracee.ReadLink(link) is { } target && exe.IsAt(link)) return target;
        Copy? name = copies.FirstOrDefault(c => c.Kind == CopyKind.String);
        if (name is null) return null;
        string filename = CString(name.Data);
        if (filename.StartsWith('/') && LibC.TryCanonicalPath(filename, true, out string canonical, out ulong dev, out ulong ino)
            && ino == exe.Inode && dev == LibC.UserDevice(exe.Device))
            return canonical;
        return filename;
    }

    private void OnExit(in RecordHeader h, ReadOnlySpan<byte> rec)
    {
        int code = I32(rec, 24);
        _live.Remove(h.Tid);
        _entries.Remove(h.Tid);
        _execImages.Remove(h.Tid);
        if ((h.Flags & RecordHeader.Replaced) != 0) return;   // the leader another thread's execve replaced: ptrace reports no exit either
        bool signaled = (code & 0x7f) != 0;
        Emit(new ProcessExitEvent
        {
            Timestamp = Time(h.BootNs), Pid = h.Pid, Tid = h.Tid, ProcessName = Comm(h.Pid),
            ExitCode = signaled ? null : (code >> 8) & 0xff, Signal = signaled ? Signals.Name(code & 0x7f) : null,
            CoreDumped = signaled && (code & 0x80) != 0, IsThread = h.Tid != h.Pid, Sequence = ++_sequence,
        });
    }

    private void OnSignal(in RecordHeader h, ReadOnlySpan<byte> rec)
    {
        int sig = I32(rec, 24), code = I32(rec, 28), sender = I32(rec, 36);
        uint senderUid = U32(rec, 40);
        bool hasSender = code <= 0 || sig == Sigchld;
        Emit(new SignalEvent
        {
            Timestamp = Time(h.BootNs), Pid = h.Pid, Tid = h.Tid, ProcessName = Comm(h.Pid), Signal = Signals.Name(sig), SignalNumber = sig,
            Code = Signals.CodeName(sig, code), SenderPid = hasSender ? sender : 0, SenderUid = hasSender ? (int)senderUid : 0,
            Delivered = true, Sequence = ++_sequence,
        });
    }

    /// <summary>Calls still in flight when an attached trace stops: written Unfinished, as the ptrace engine writes them on detach.</summary>
    private void ReportInflightAsUnfinished()
    {
        if (_launchedPid > 0 || _summary is not null) return;   // killed tasks' calls are reported by the kernel at their exit
        var tgids = TracedTasks().ToDictionary(t => t.Tid, t => t.Tgid);
        foreach (byte[] key in _inflight!.Keys())
        {
            int tid = BinaryPrimitives.ReadInt32LittleEndian(key);
            if (!tgids.TryGetValue(tid, out int pid) || _inflight.TryLookup(key) is not { } v) continue;
            if ((BinaryPrimitives.ReadUInt32LittleEndian(v.AsSpan(60)) & 5) != 5) continue;   // IF_ACTIVE | IF_SELECTED: a reported call in flight
            var args = new ulong[6];
            for (int i = 0; i < 6; i++) args[i] = BinaryPrimitives.ReadUInt64LittleEndian(v.AsSpan(8 + 8 * i));
            long enterNs = BinaryPrimitives.ReadInt64LittleEndian(v);
            var copies = _entries.Remove(tid, out var e) && e.EnterNs == enterNs ? e.Copies : [];
            uint nfd = BinaryPrimitives.ReadUInt32LittleEndian(v.AsSpan(100));
            for (int k = 0; k < Math.Min(2, (int)nfd); k++)
            {
                var id = v.AsSpan(64 + 16 * k);
                copies.Add(new Copy((ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(id[12..]), 0, CopyKind.Fd, 0, [],
                    new FileIdentity(BinaryPrimitives.ReadUInt64LittleEndian(id), BinaryPrimitives.ReadUInt32LittleEndian(id[8..]))));
            }
            int nr = (int)BinaryPrimitives.ReadUInt32LittleEndian(v.AsSpan(56));
            long now = LibC.ClockNs(LibC.CLOCK_BOOTTIME);
            Emit(Decode(pid, tid, nr, args, 0, true, copies, Time(enterNs), TimeSpan.FromTicks(Math.Max(0, now - enterNs) / 100)));
        }
    }

    /// <summary>Records lost after the last one seen on a CPU: only the kernel's record numbers tell.</summary>
    private void ReportTailLosses(RingBufferReader.RecordHandler handler)
    {
        uint[] kernel = new uint[_lastSequence.Length];
        for (int attempt = 0; ; attempt++)
        {
            byte[]? all = _seqs!.TryLookup(Key(0));
            if (all is null) return;
            bool behind = false;
            for (int cpu = 0; cpu < kernel.Length; cpu++)
            {
                kernel[cpu] = (uint)BinaryPrimitives.ReadUInt64LittleEndian(all.AsSpan(cpu * _seqs.PerCpuStride));
                behind |= kernel[cpu] != _lastSequence[cpu];
            }
            if (!behind || attempt == 5) break;
            Thread.Sleep(2);   // a record still being written by a program that was running at the detach
            _ring!.Consume(handler);
        }
        for (int cpu = 0; cpu < kernel.Length; cpu++)
        {
            uint gap = kernel[cpu] - _lastSequence[cpu];
            if (gap > 0 && gap < 1u << 31) EmitLost(cpu, gap, DateTime.UtcNow);
            _lastSequence[cpu] = kernel[cpu];
        }
    }

    /// <summary>What the kernel counted but no record shows: calls it could not keep in flight, tasks it could not follow, entry copies lost.</summary>
    private void ReportKernelCounters()
    {
        ulong inflightFull = Counter(BpfSyscallObject.CounterInflightFull), tracedFull = Counter(BpfSyscallObject.CounterTracedFull);
        ulong entryLost = Counter(BpfSyscallObject.CounterEntryLost);
        if (inflightFull > _reportedInflightFull)
        {
            // Those calls were never reported: lost events, whose CPU is not known.
            EmitLost(-1, (long)(inflightFull - _reportedInflightFull), DateTime.UtcNow);
            _reportedInflightFull = inflightFull;
        }
        if (tracedFull > _reportedTracedFull)
        {
            _log.LogWarning("{Count} new task(s) were not followed: the kernel's set of traced tasks was full.", tracedFull - _reportedTracedFull);
            _reportedTracedFull = tracedFull;
        }
        if (entryLost > _reportedEntryLost)
        {
            _log.LogWarning("The entry copies of {Count} call(s) did not fit in the ring buffer: their input arguments show as {Unavailable}.", entryLost - _reportedEntryLost, SyscallDecoder.Unavailable);
            _reportedEntryLost = entryLost;
        }
    }

    private ulong Counter(int index)
    {
        byte[]? all = _counters!.TryLookup(Key((uint)index));
        if (all is null) return 0;
        ulong sum = 0;
        for (int cpu = 0; cpu < PossibleCpusCount; cpu++) sum += BinaryPrimitives.ReadUInt64LittleEndian(all.AsSpan(cpu * _counters.PerCpuStride));
        return sum;
    }

    private int PossibleCpusCount => _lastSequence.Length;

    /// <summary>-Summary: the calls, errors and time the kernel counted per system call, summed over CPUs.</summary>
    private void ReadTotals(SyscallSummaryBuilder summary)
    {
        for (int nr = 0; nr <= Math.Min(_arch.MaxNumber, BpfSyscallObject.MaxNumber - 1); nr++)
        {
            byte[]? all = _totals!.TryLookup(Key((uint)nr));
            if (all is null) continue;
            ulong calls = 0, errors = 0, ns = 0;
            for (int cpu = 0; cpu < PossibleCpusCount; cpu++)
            {
                var v = all.AsSpan(cpu * _totals.PerCpuStride);
                calls += BinaryPrimitives.ReadUInt64LittleEndian(v);
                errors += BinaryPrimitives.ReadUInt64LittleEndian(v[8..]);
                ns += BinaryPrimitives.ReadUInt64LittleEndian(v[16..]);
            }
            if (calls > 0) summary.Add(_arch.Name(nr), (long)calls, (long)errors, TimeSpan.FromTicks((long)(ns / 100)));
        }
    }

    private static string CString(ReadOnlySpan<byte> b)
    {
        int nul = b.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? b : b[..nul]);
    }
}
