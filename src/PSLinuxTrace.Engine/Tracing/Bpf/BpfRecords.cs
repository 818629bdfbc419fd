using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Tracing.Bpf;

/// <summary>The records src/bpf/syscalls.bpf.c writes to its ring buffer (REC_*).</summary>
internal enum RecordKind : byte { Syscall = 1, Enter = 2, Fork = 3, Exit = 4, Exec = 5, Signal = 6 }

/// <summary>struct hdr, common to every record: kind, flags, CPU and its sequence number, task, boot-clock time.</summary>
internal readonly record struct RecordHeader(RecordKind Kind, byte Flags, int Cpu, uint Sequence, int Pid, int Tid, long BootNs)
{
    public const byte Unfinished = 1, EntryLost = 2, CopiesCut = 4, Replaced = 8;   // RF_*
}

/// <summary>Reads the records (layouts from syscalls.bpf.c: keep in step). A record shorter than its layout is skipped.</summary>
internal static class BpfRecords
{
    public const int HeaderSize = 24;
    public const int SyscallSize = 96, EnterSize = 32, ForkSize = 64, ExitSize = 32, ExecSize = 64, SignalSize = 48;
    private const int CopyHeaderSize = 16;

    public static RecordHeader Header(ReadOnlySpan<byte> r) => new(
        (RecordKind)r[0], r[1], BinaryPrimitives.ReadUInt16LittleEndian(r[2..]), U32(r, 4), I32(r, 8), I32(r, 12), I64(r, 16));

    public static int MinimumSize(RecordKind kind) => kind switch
    {
        RecordKind.Syscall => SyscallSize, RecordKind.Enter => EnterSize, RecordKind.Fork => ForkSize,
        RecordKind.Exit => ExitSize, RecordKind.Exec => ExecSize, RecordKind.Signal => SignalSize, _ => int.MaxValue,
    };

    public static uint U32(ReadOnlySpan<byte> r, int at) => BinaryPrimitives.ReadUInt32LittleEndian(r[at..]);
    public static int I32(ReadOnlySpan<byte> r, int at) => BinaryPrimitives.ReadInt32LittleEndian(r[at..]);
    public static long I64(ReadOnlySpan<byte> r, int at) => BinaryPrimitives.ReadInt64LittleEndian(r[at..]);
    public static ulong U64(ReadOnlySpan<byte> r, int at) => BinaryPrimitives.ReadUInt64LittleEndian(r[at..]);

    /// <summary>struct syscall_rec after the header: nr, copies' length, exit time, the six arguments, the result.</summary>
    public static (int Number, int CopiesLength, long ExitNs, ulong[] Args, long Ret) Syscall(ReadOnlySpan<byte> r)
    {
        var args = new ulong[6];
        for (int i = 0; i < 6; i++) args[i] = U64(r, 40 + 8 * i);
        return ((int)U32(r, 24), (int)U32(r, 28), I64(r, 32), args, I64(r, 88));
    }

    /// <summary>
    /// The copies behind a record's fixed part (struct copy, then its bytes padded to 8). Copies that
    /// would run past the record are dropped: the decoder then says the memory is unavailable.
    /// </summary>
    public static List<Copy> Copies(ReadOnlySpan<byte> area, int declared, List<Copy>? into = null)
    {
        var list = into ?? new List<Copy>(2);
        area = area[..Math.Min(Math.Max(declared, 0), area.Length)];
        int off = 0;
        while (off + CopyHeaderSize <= area.Length)
        {
            ulong addr = U64(area, off);
            int len = (int)U32(area, off + 8);
            byte arg = area[off + 12], kind = area[off + 13], flags = area[off + 14];
            int data = off + CopyHeaderSize;
            if (len < 0 || data + len > area.Length) break;
            if ((CopyKind)kind == CopyKind.Fd)
            {
                if (len < 12) break;
                var id = new FileIdentity(U64(area, data), U32(area, data + 8));
                list.Add(new Copy(addr, arg, CopyKind.Fd, flags, [], id));
            }
            else
                list.Add(new Copy(addr, arg, (CopyKind)kind, flags, area.Slice(data, len).ToArray()));
            off = data + ((len + 7) & ~7);
        }
        return list;
    }
}
