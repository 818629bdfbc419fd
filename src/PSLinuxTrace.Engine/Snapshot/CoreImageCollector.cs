using PSLinuxTrace.Engine.Interop;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;
using PSLinuxTrace.Engine.Ptrace;

namespace PSLinuxTrace.Engine.Snapshot;

/// <summary>
/// What a core holds besides memory, read from a stopped process (its registers, its identity from
/// /proc, its auxv and mappings), and which memory goes in, as the kernel's coredump_filter decides it.
/// </summary>
internal static class CoreImageCollector
{
    /// <summary>The notes' contents and the mappings of <paramref name="pid"/>, whose threads <paramref name="tids"/> are stopped.</summary>
    public static (CoreImage Image, List<MemoryMapping> Maps) Collect(PtraceSession session, int pid, IReadOnlyList<int> tids)
    {
        var image = new CoreImage { Pid = pid };
        var status = ProcFs.ReadStatus(pid);
        image.ParentPid = status.ParentPid;
        image.Uid = status.RealUid;
        image.Gid = status.RealGid;
        image.State = status.State;
        image.Comm = ProcFs.ReadComm(pid);
        image.Arguments = string.Join(' ', ProcFs.ReadCommandLine(pid));
        var fields = ProcFs.ReadStatFields(pid);
        image.ProcessGroup = int.Parse(fields[2]);
        image.Session = int.Parse(fields[3]);
        image.Nice = int.Parse(fields[16]);
        image.Flags = ulong.Parse(fields[6]);
        image.Auxv = ProcFs.ReadBytes(pid, "auxv");
        // The thread-group leader first, as the kernel writes it.
        foreach (int tid in tids.OrderBy(t => t == pid ? 0 : 1).ThenBy(t => t))
            image.Threads.Add(ThreadOf(session, tid));
        return (image, ProcFs.ReadMaps(pid));
    }

    public static CoreImage.Thread ThreadOf(PtraceSession session, int tid) => new()
    {
        Tid = tid,
        Registers = session.GetRegisters(tid),
        FpRegs = session.GetFpRegisters(tid),
        XState = session.GetRegisterSet(tid, LibC.NT_X86_XSTATE),
    };

    /// <summary>
    /// Decides what memory goes in, as the kernel's coredump_filter does: anonymous memory, private
    /// file mappings the process has written to (smaps "Anonymous" &gt; 0: .data, RELRO, .dynamic
    /// with DT_DEBUG, which debuggers need to find the shared libraries), the first page of each ELF
    /// file. Reads smaps of <paramref name="source"/> (the frozen twin), so it costs the target no pause.
    /// </summary>
    internal static void AddSegments(CoreImage image, List<MemoryMapping> maps, int source, SnapshotMemory include,
        Dictionary<ulong, long>? anonymous = null)
    {
        anonymous ??= ReadSmapsAnonymous(source);
        foreach (var m in maps)
        {
            if (m.Kind == MappingKind.Vvar || m.Kind == MappingKind.Vsyscall) continue; // not readable memory
            uint flags = (m.IsReadable ? 4u : 0) | (m.IsWritable ? 2u : 0) | (m.IsExecutable ? 1u : 0);
            bool file = m.Kind == MappingKind.File;
            bool shared = !m.IsPrivate;
            bool written = anonymous.TryGetValue(m.Start, out long kb) && kb > 0;
            bool dump = (file, shared) switch
            {
                (false, false) => include.HasFlag(SnapshotMemory.AnonymousPrivate) || m.Kind == MappingKind.Vdso,
                (false, true) => include.HasFlag(SnapshotMemory.AnonymousShared),
                (true, false) => include.HasFlag(SnapshotMemory.FilePrivate) || ((written || m.IsWritable) && include.HasFlag(SnapshotMemory.AnonymousPrivate)),
                (true, true) => include.HasFlag(SnapshotMemory.FileShared),
            };
            ulong size = m.End - m.Start;
            ulong dumpSize = !m.IsReadable ? 0 : dump ? size : file && m.Offset == 0 && include.HasFlag(SnapshotMemory.ElfHeaders) && IsElf(source, m.Start) ? Math.Min(size, 4096) : 0;
            string? path = file ? m.Path : null;
            // filesz < memsz would mean "zeros" to readers, so the ELF header page gets a segment of its own.
            if (dumpSize > 0 && dumpSize < size)
            {
                image.Segments.Add(new CoreImage.Segment { Start = m.Start, End = m.Start + dumpSize, Flags = flags, DumpSize = dumpSize, Path = path, FileOffset = m.Offset, Inode = m.Inode, Private = m.IsPrivate });
                image.Segments.Add(new CoreImage.Segment { Start = m.Start + dumpSize, End = m.End, Flags = flags, DumpSize = 0, Path = path, FileOffset = m.Offset + dumpSize, Inode = m.Inode, Private = m.IsPrivate });
            }
            else
            {
                image.Segments.Add(new CoreImage.Segment { Start = m.Start, End = m.End, Flags = flags, DumpSize = dumpSize, Path = path, FileOffset = m.Offset, Inode = m.Inode, Private = m.IsPrivate });
            }
        }
    }

    /// <summary>Mapping start → "Anonymous:" kB from /proc/PID/smaps.</summary>
    internal static Dictionary<ulong, long> ReadSmapsAnonymous(int pid)
    {
        var result = new Dictionary<ulong, long>();
        ulong current = 0;
        foreach (var line in ProcFs.ReadText(pid, "smaps").AsSpan().EnumerateLines())
        {
            if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.IndexOf('-') is > 0 and var dash && dash < 17)
            {
                current = ulong.Parse(line[..dash], System.Globalization.NumberStyles.HexNumber);
                continue;
            }
            if (line.StartsWith("Anonymous:", StringComparison.Ordinal))
            {
                var v = line[10..].Trim();
                int sp = v.IndexOf(' ');
                result[current] = long.Parse(sp > 0 ? v[..sp] : v);
            }
        }
        return result;
    }

    private static bool IsElf(int pid, ulong address)
    {
        Span<byte> magic = stackalloc byte[4];
        return RemoteMemory.Read(pid, address, magic) == 4 && Elf.ElfFile.HasElfMagic(magic);
    }
}
