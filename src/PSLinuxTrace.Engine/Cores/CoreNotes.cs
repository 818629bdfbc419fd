using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Interop;

namespace PSLinuxTrace.Engine.Cores;

/// <summary>
/// Layouts of the x86_64 core notes (include/uapi/linux/elfcore.h, siginfo.h, binfmt_elf.c's
/// fill_files_note) read from and written to spans. Sizes are checked: a short descriptor is a
/// BadInputFormatException.
/// </summary>
public static class CoreNotes
{
    public const int PrStatusSize = 336, PrStatusRegOffset = 112, PrPsInfoSize = 136, SigInfoSize = 128, FpRegsSize = 512;

    public sealed record PrStatus(int SigNo, int SigCode, int SigErrno, short CurSig, ulong SigPending, ulong SigHold,
        int Pid, int PPid, int PGrp, int Sid, UserRegsX64 Registers);

    public sealed record PrPsInfo(byte State, char StateName, byte Zombie, sbyte Nice, ulong Flags, uint Uid, uint Gid,
        int Pid, int PPid, int PGrp, int Sid, string FileName, string Arguments);

    public sealed record SigInfo(int SigNo, int Errno, int Code, ulong Address, int SenderPid, uint SenderUid);

    public sealed record FileMapping(ulong Start, ulong End, ulong FileOffset, string Path);

    private static void Need(ReadOnlySpan<byte> d, int size, string what)
    {
        if (d.Length < size) throw new BadInputFormatException($"{what} note is {d.Length} bytes; at least {size} are needed.");
    }

    public static PrStatus ParsePrStatus(ReadOnlySpan<byte> d)
    {
        Need(d, PrStatusSize, "NT_PRSTATUS");
        return new PrStatus(I32(d, 0), I32(d, 4), I32(d, 8), BinaryPrimitives.ReadInt16LittleEndian(d[12..]), U64(d, 16), U64(d, 24),
            I32(d, 32), I32(d, 36), I32(d, 40), I32(d, 44), ParseUserRegs(d.Slice(PrStatusRegOffset, UserRegsX64.Size)));
    }

    public static UserRegsX64 ParseUserRegs(ReadOnlySpan<byte> d)
    {
        Need(d, UserRegsX64.Size, "user_regs_struct");
        var v = new ulong[27];
        for (int i = 0; i < 27; i++) v[i] = U64(d, i * 8);
        ulong R(int i) => v[i];
        return new UserRegsX64
        {
            r15 = R(0), r14 = R(1), r13 = R(2), r12 = R(3), rbp = R(4), rbx = R(5), r11 = R(6), r10 = R(7), r9 = R(8), r8 = R(9),
            rax = R(10), rcx = R(11), rdx = R(12), rsi = R(13), rdi = R(14), orig_rax = R(15), rip = R(16), cs = R(17),
            eflags = R(18), rsp = R(19), ss = R(20), fs_base = R(21), gs_base = R(22), ds = R(23), es = R(24), fs = R(25), gs = R(26),
        };
    }

    public static void WriteUserRegs(Span<byte> d, in UserRegsX64 r)
    {
        ulong[] v = { r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx, r.rsi, r.rdi,
            r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds, r.es, r.fs, r.gs };
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt64LittleEndian(d[(i * 8)..], v[i]);
    }

    public static PrPsInfo ParsePrPsInfo(ReadOnlySpan<byte> d)
    {
        Need(d, PrPsInfoSize, "NT_PRPSINFO");
        return new PrPsInfo(d[0], (char)d[1], d[2], (sbyte)d[3], U64(d, 8), U32(d, 16), U32(d, 20), I32(d, 24), I32(d, 28), I32(d, 32), I32(d, 36),
            CStr(d.Slice(40, 16)), CStr(d.Slice(56, 80)).TrimEnd());
    }

    public static SigInfo ParseSigInfo(ReadOnlySpan<byte> d)
    {
        Need(d, SigInfoSize, "NT_SIGINFO");
        int signo = I32(d, 0), errno = I32(d, 4), code = I32(d, 8);
        // The union at offset 16: si_addr for fault signals, si_pid/si_uid for kill-style signals.
        bool fault = signo is 4 or 5 or 7 or 8 or 11; // SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV
        bool fromUser = code <= 0;
        return new SigInfo(signo, errno, code, fault && !fromUser ? U64(d, 16) : 0, fromUser ? I32(d, 16) : 0, fromUser ? U32(d, 20) : 0);
    }

    /// <summary>NT_FILE: count, page size, count × (start, end, offset in pages), then the NUL-separated names.</summary>
    public static List<FileMapping> ParseFileNote(ReadOnlySpan<byte> d)
    {
        Need(d, 16, "NT_FILE");
        ulong count = U64(d, 0), pageSize = U64(d, 8);
        if (count > (ulong)(d.Length - 16) / 24) throw new BadInputFormatException($"NT_FILE claims {count} mappings in {d.Length} bytes.");
        var list = new List<FileMapping>((int)count);
        int names = 16 + (int)count * 24;
        for (int i = 0; i < (int)count; i++)
        {
            if (names >= d.Length) throw new BadInputFormatException("NT_FILE has fewer names than mappings.");
            int nul = d[names..].IndexOf((byte)0);
            int len = nul < 0 ? d.Length - names : nul;
            string name = Encoding.UTF8.GetString(d.Slice(names, len));
            names += len + 1;
            int e = 16 + i * 24;
            list.Add(new FileMapping(U64(d, e), U64(d, e + 8), unchecked(U64(d, e + 16) * (pageSize == 0 ? 4096 : pageSize)), name));
        }
        return list;
    }

    public static List<(ulong Type, ulong Value)> ParseAuxv(ReadOnlySpan<byte> d)
    {
        var list = new List<(ulong, ulong)>();
        for (int i = 0; i + 16 <= d.Length; i += 16)
        {
            ulong type = U64(d, i);
            if (type == 0) break; // AT_NULL
            list.Add((type, U64(d, i + 8)));
        }
        return list;
    }

    public static string AuxvName(ulong type) => type switch
    {
        0 => "AT_NULL", 1 => "AT_IGNORE", 2 => "AT_EXECFD", 3 => "AT_PHDR", 4 => "AT_PHENT", 5 => "AT_PHNUM", 6 => "AT_PAGESZ",
        7 => "AT_BASE", 8 => "AT_FLAGS", 9 => "AT_ENTRY", 10 => "AT_NOTELF", 11 => "AT_UID", 12 => "AT_EUID", 13 => "AT_GID",
        14 => "AT_EGID", 15 => "AT_PLATFORM", 16 => "AT_HWCAP", 17 => "AT_CLKTCK", 23 => "AT_SECURE", 24 => "AT_BASE_PLATFORM",
        25 => "AT_RANDOM", 26 => "AT_HWCAP2", 27 => "AT_RSEQ_FEATURE_SIZE", 28 => "AT_RSEQ_ALIGN", 29 => "AT_HWCAP3", 30 => "AT_HWCAP4",
        31 => "AT_EXECFN", 32 => "AT_SYSINFO", 33 => "AT_SYSINFO_EHDR", 51 => "AT_MINSIGSTKSZ",
        _ => $"AT_{type}",
    };

    /// <summary>si_code names for the common cases (include/uapi/asm-generic/siginfo.h).</summary>
    public static string? SignalCodeName(int signo, int code) => code switch
    {
        0 => "SI_USER", -1 => "SI_QUEUE", -2 => "SI_TIMER", -3 => "SI_MESGQ", -4 => "SI_ASYNCIO", -5 => "SI_SIGIO", -6 => "SI_TKILL", 0x80 => "SI_KERNEL",
        _ => signo switch
        {
            11 => code switch { 1 => "SEGV_MAPERR", 2 => "SEGV_ACCERR", 3 => "SEGV_BNDERR", 4 => "SEGV_PKUERR", _ => null },
            7 => code switch { 1 => "BUS_ADRALN", 2 => "BUS_ADRERR", 3 => "BUS_OBJERR", _ => null },
            8 => code switch { 1 => "FPE_INTDIV", 2 => "FPE_INTOVF", 3 => "FPE_FLTDIV", 4 => "FPE_FLTOVF", 5 => "FPE_FLTUND", 6 => "FPE_FLTRES", 7 => "FPE_FLTINV", 8 => "FPE_FLTSUB", _ => null },
            4 => code switch { 1 => "ILL_ILLOPC", 2 => "ILL_ILLOPN", 3 => "ILL_ILLADR", 4 => "ILL_ILLTRP", 5 => "ILL_PRVOPC", 6 => "ILL_PRVREG", 7 => "ILL_COPROC", 8 => "ILL_BADSTK", _ => null },
            5 => code switch { 1 => "TRAP_BRKPT", 2 => "TRAP_TRACE", _ => null },
            _ => null,
        },
    };

    private static string CStr(ReadOnlySpan<byte> d)
    {
        int nul = d.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? d : d[..nul]);
    }

    private static int I32(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadInt32LittleEndian(d[o..]);
    private static uint U32(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt32LittleEndian(d[o..]);
    private static ulong U64(ReadOnlySpan<byte> d, int o) => BinaryPrimitives.ReadUInt64LittleEndian(d[o..]);
}
