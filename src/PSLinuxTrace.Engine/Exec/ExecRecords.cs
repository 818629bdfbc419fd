using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Exec;

/// <summary>
/// The exec-specific half of Watch-Exec's BPF object (src/bpf/exec.bpf.c): the config map's layout
/// (BTF offsets, then the kernel-side filters) and the records the programs write to the ring buffer.
/// </summary>
internal static class ExecRecords
{
    public const uint RecEnter = 1, RecExit = 2;
    private const uint FArgsTruncated = 1, FEnvTruncated = 2, FArgsFault = 4, FExecveat = 8;
    // struct exec_event in exec.bpf.c: 96-byte header, filename, argv right after it; envp at HeaderSize + PathCap + ArgsSlot.
    public const int HeaderSize = 96, PathCap = 4096, ArgsCap = 32768, ArgsSlot = 2 * ArgsCap;
    public const int ConfigSize = 64;
    /// <summary>struct exit_event: kind, pid, tid, pad, ret, boot_ns.</summary>
    public const int ExitSize = 32;

    public static uint Kind(ReadOnlySpan<byte> rec) => U32(rec, 0);

    /// <summary>An entry record (struct exec_event and the strings after it) as an event with no result yet.</summary>
    public static ExecEvent ParseEnter(ReadOnlySpan<byte> rec, long bootToRealtimeNs, bool includeEnvironment)
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
            Timestamp = DateTime.UnixEpoch.AddTicks((bootNs + bootToRealtimeNs) / 100).ToLocalTime(),
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
            Environment = includeEnvironment ? SplitStrings(env) : null,
            EnvironmentTruncated = (flags & FEnvTruncated) != 0,
        };
    }

    /// <summary>An exit record: who returned from the exec, and with what.</summary>
    public static (int Pid, int Tid, long Ret) ParseExit(ReadOnlySpan<byte> rec) =>
        ((int)U32(rec, 4), (int)U32(rec, 8), BinaryPrimitives.ReadInt64LittleEndian(rec[16..]));

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
