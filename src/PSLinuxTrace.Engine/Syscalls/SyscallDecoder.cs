using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Memory;

namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>
/// Turns raw syscall arguments into strace's text: strings read from the tracee (process_vm_readv),
/// flag names, the common structs, and file descriptors with their paths (strace -y). Input arguments
/// are decoded at syscall entry (before execve replaces the memory, before close drops the fd);
/// output arguments at exit.
/// </summary>
public sealed class SyscallDecoder
{
    /// <summary>How many bytes of a data buffer to show (strace -s; its default is 32).</summary>
    public int StringLimit { get; init; } = 32;

    /// <summary>Show fd paths like strace -y.</summary>
    public bool DecodeFdPaths { get; init; } = true;

    /// <summary>
    /// Remember fd paths per process between calls (one readlink of /proc/PID/fd/N per fd instead of per
    /// call). Only valid when the tracer sees every system call (no filter): <see cref="OnCompleted"/>
    /// must be told each call that can change the fd table.
    /// </summary>
    public bool CacheFdPaths { get; init; }

    private readonly Dictionary<long, string> _fdPaths = new();
    private int _tgid;

    /// <summary>The process whose fd table the next decode reads (threads share one).</summary>
    public void SetProcess(int tgid) => _tgid = tgid;

    /// <summary>Keeps the fd path cache true after a completed call of process <paramref name="tgid"/>.</summary>
    public void OnCompleted(int tgid, string name, ulong[] args, long ret)
    {
        if (!CacheFdPaths || _fdPaths.Count == 0) return;
        switch (name)
        {
            case "close": _fdPaths.Remove(Key(tgid, (long)args[0])); break;
            case "dup2" or "dup3": _fdPaths.Remove(Key(tgid, (long)args[1])); break;
            case "chdir" or "fchdir" or "chroot": _fdPaths.Remove(Key(tgid, -100)); break;
            case "execve" or "execveat" or "close_range" or "recvmsg" or "recvmmsg" or "pipe" or "pipe2" or "socketpair" or "unshare":
                Forget(tgid); return;
        }
        // Whatever returns a small number may have returned a new fd with that number.
        if (ret >= 0 && ret < 1 << 20 && !SyscallSignatures.ReturnsAddress(name)) _fdPaths.Remove(Key(tgid, ret));
    }

    /// <summary>Drops what is cached for a process (it exited or exec'd).</summary>
    public void Forget(int tgid)
    {
        if (_fdPaths.Count == 0) return;
        foreach (long k in _fdPaths.Keys.Where(k => (int)(k >> 32) == tgid).ToList()) _fdPaths.Remove(k);
    }

    // strace -y shows AT_FDCWD</current/directory>; cached like an fd under the number -100.
    private string CwdSuffix(int tid)
    {
        if (CacheFdPaths && _fdPaths.TryGetValue(Key(_tgid, -100), out var cached)) return cached;
        try
        {
            var target = new DirectoryInfo($"/proc/{tid}/cwd").LinkTarget;
            string text = target is null ? "" : $"<{target}>";
            if (CacheFdPaths && target is not null) _fdPaths[Key(_tgid, -100)] = text;
            return text;
        }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    private static long Key(int tgid, long fd) => ((long)tgid << 32) | (uint)fd;

    /// <summary>Decodes what is known at entry; output arguments are left null.</summary>
    public string?[] DecodeEntry(int tid, string name, ulong[] args)
    {
        var specs = SyscallSignatures.Get(name);
        if (specs is null) return Unknown(args);
        int count = specs.Length;
        // strace shows open's mode only when the call can create a file (O_CREAT or O_TMPFILE).
        const ulong creates = 0x40 | 0x410000;
        if ((name is "open" && (args[1] & creates) == 0) || (name is "openat" && (args[2] & creates) == 0)) count--;
        var result = new string?[count];
        for (int i = 0; i < count; i++)
            if (!specs[i].IsOutput) result[i] = Safe(() => Format(tid, specs[i], args, i, 0));
        return result;
    }

    /// <summary>Fills the output arguments once the call returned <paramref name="ret"/>.</summary>
    public string[] DecodeExit(int tid, string name, ulong[] args, string?[] entry, long ret, bool failed)
    {
        var specs = SyscallSignatures.Get(name);
        var result = new string[entry.Length];
        for (int i = 0; i < entry.Length; i++)
        {
            if (entry[i] is { } s) { result[i] = s; continue; }
            var spec = specs![i];
            result[i] = failed ? Pointer(args[i]) : Safe(() => Format(tid, spec, args, i, ret));
        }
        return result;
    }

    /// <summary>strace's return column: "3&lt;/etc/passwd&gt;", "0x7f...", "-1 ENOENT (No such file or directory)".</summary>
    public string FormatResult(int tid, string name, long ret, bool failed)
    {
        if (failed)
        {
            int e = (int)-ret;
            string en = Interop.Errno.Name(e);
            // 512-530 are the kernel's internal restart codes (ERESTARTSYS...), which strace prints by name too.
            return $"-1 {en} ({Describe(e)})";
        }
        if (SyscallSignatures.ReturnsAddress(name)) return $"0x{ret:x}";
        if (SyscallSignatures.ReturnsFd(name) && DecodeFdPaths) return FdWithPath(tid, ret);
        if (name == "fcntl") return ret.ToString();
        return ret.ToString();
    }

    private static string Describe(int errno) => errno switch
    {
        512 => "To be restarted if SA_RESTART is set", 513 => "To be restarted if no handler", 514 => "Interrupted by signal",
        516 => "To be restarted", _ => Interop.Errno.Describe(errno),
    };

    private static string?[] Unknown(ulong[] args)
    {
        var r = new string?[6];
        for (int i = 0; i < 6; i++) r[i] = $"0x{args[i]:x}";
        return r;
    }

    private static string Safe(Func<string> f)
    {
        try { return f(); }
        catch (LinuxTraceException) { return "?"; }
        catch (IOException) { return "?"; }
    }

    private string Format(int tid, ArgSpec spec, ulong[] args, int i, long ret)
    {
        ulong v = args[i];
        switch (spec.Kind)
        {
            case ArgKind.Int: return ((long)v).ToString();
            case ArgKind.UInt: return v.ToString();
            case ArgKind.Hex: return $"0x{v:x}";
            case ArgKind.Ptr: return Pointer(v);
            case ArgKind.Fd: return DecodeFdPaths ? FdWithPath(tid, (int)v) : ((int)v).ToString();
            case ArgKind.DirFd: return (int)v == -100 ? (DecodeFdPaths ? "AT_FDCWD" + CwdSuffix(tid) : "AT_FDCWD") : DecodeFdPaths ? FdWithPath(tid, (int)v) : ((int)v).ToString();
            case ArgKind.Path: return v == 0 ? "NULL" : QuotedCString(tid, v, 4096);
            case ArgKind.InBuf: return v == 0 ? "NULL" : Buffer(tid, v, (long)Math.Min(args[spec.LengthArg], int.MaxValue));
            case ArgKind.OutBuf: return v == 0 ? "NULL" : Buffer(tid, v, ret);
            case ArgKind.OpenFlags: return OpenFlags((long)v);
            case ArgKind.Mode: return v == 0 ? "000" : "0" + Convert.ToString((long)(v & 0xffff), 8);
            case ArgKind.Prot: return Flags(v, ProtNames, "PROT_NONE");
            case ArgKind.MapFlags: return MapFlags(v);
            case ArgKind.CloneFlags: return CloneFlags(v);
            case ArgKind.Signal: return v == 0 ? "0" : Signals.Name((int)v);
            case ArgKind.Argv: return v == 0 ? "NULL" : StringArray(tid, v);
            case ArgKind.Envp: return v == 0 ? "NULL" : $"0x{v:x} /* {CountPointers(tid, v)} vars */";
            case ArgKind.FutexOp: return FutexOp((int)v);
            case ArgKind.Ioctl: return IoctlNames.TryGetValue((uint)v, out var io) ? io : $"0x{(uint)v:x}";
            case ArgKind.Fcntl: return FcntlNames.TryGetValue((int)v, out var fc) ? fc : ((int)v).ToString();
            case ArgKind.Whence: return v switch { 0 => "SEEK_SET", 1 => "SEEK_CUR", 2 => "SEEK_END", 3 => "SEEK_DATA", 4 => "SEEK_HOLE", _ => v.ToString() };
            case ArgKind.AccessMode: return v == 0 ? "F_OK" : Flags(v, AccessNames, "F_OK");
            case ArgKind.AtFlags: return Flags(v, AtFlagNames, "0");
            case ArgKind.SockDomain: return DomainNames.TryGetValue((int)v, out var d) ? d : v.ToString();
            case ArgKind.SockType: return SockType(v);
            case ArgKind.SockAddr: return v == 0 ? "NULL" : SockAddr(tid, v, (int)Math.Min(args[spec.LengthArg], 128));
            case ArgKind.SockAddrOut: return v == 0 ? "NULL" : SockAddr(tid, v, 128);
            case ArgKind.WaitOptions: return Flags(v, WaitOptionNames, "0");
            case ArgKind.WaitStatusOut: return v == 0 ? "NULL" : WaitStatus(tid, v);
            case ArgKind.PipeFdsOut: return PipeFds(tid, v);
            case ArgKind.SigHow: return v switch { 0 => "SIG_BLOCK", 1 => "SIG_UNBLOCK", 2 => "SIG_SETMASK", _ => v.ToString() };
            case ArgKind.SigAction: return v == 0 ? "NULL" : SigAction(tid, v);
            case ArgKind.StatOut: return v == 0 ? "NULL" : Stat(tid, v);
            case ArgKind.Clone3Args: return v == 0 ? "NULL" : Clone3(tid, v);
            case ArgKind.MsFlags: return $"0x{v:x}";
            case ArgKind.CloseRangeFlags: return Flags(v, [(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")], "0");
            default: return $"0x{v:x}";
        }
    }

    private static string Pointer(ulong v) => v == 0 ? "NULL" : $"0x{v:x}";

    private string FdWithPath(int tid, long fd)
    {
        if (fd < 0) return fd.ToString();
        if (CacheFdPaths && _fdPaths.TryGetValue(Key(_tgid, fd), out var cached)) return cached;
        try
        {
            var target = new FileInfo($"/proc/{tid}/fd/{fd}").LinkTarget;
            string text = target is null ? fd.ToString() : $"{fd}<{target}>";
            if (CacheFdPaths && target is not null) _fdPaths[Key(_tgid, fd)] = text;
            return text;
        }
        catch (IOException) { return fd.ToString(); }
        catch (UnauthorizedAccessException) { return fd.ToString(); }
    }

    private static string QuotedCString(int tid, ulong address, int max)
    {
        byte[] bytes = RemoteMemory.ReadCString(tid, address, max, out bool truncated);
        if (bytes.Length == 0 && !truncated && !Readable(tid, address)) return $"0x{address:x}";
        return Quote(bytes) + (truncated ? "..." : "");
    }

    private static bool Readable(int tid, ulong address)
    {
        Span<byte> one = stackalloc byte[1];
        return RemoteMemory.Read(tid, address, one) == 1;
    }

    private string Buffer(int tid, ulong address, long length)
    {
        if (length <= 0) return "\"\"";
        int want = (int)Math.Min(length, StringLimit);
        var data = new byte[want];
        int n = RemoteMemory.Read(tid, address, data);
        if (n == 0) return $"0x{address:x}";
        return Quote(data.AsSpan(0, n)) + (length > StringLimit ? "..." : "");
    }

    /// <summary>strace's quoting: C escapes, other non-printables in octal.</summary>
    public static string Quote(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length + 2).Append('"');
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            switch (b)
            {
                case (byte)'"': sb.Append("\\\""); break;
                case (byte)'\\': sb.Append("\\\\"); break;
                case (byte)'\n': sb.Append("\\n"); break;
                case (byte)'\t': sb.Append("\\t"); break;
                case (byte)'\r': sb.Append("\\r"); break;
                case (byte)'\f': sb.Append("\\f"); break;
                case (byte)'\v': sb.Append("\\v"); break;
                default:
                    if (b >= 0x20 && b < 0x7f) sb.Append((char)b);
                    else
                    {
                        // strace uses the shortest octal form unless the next byte is an octal digit.
                        bool nextDigit = i + 1 < bytes.Length && bytes[i + 1] >= '0' && bytes[i + 1] <= '7';
                        sb.Append('\\').Append(nextDigit ? Convert.ToString(b, 8).PadLeft(3, '0') : Convert.ToString(b, 8));
                    }
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    private string StringArray(int tid, ulong address)
    {
        var parts = new List<string>();
        Span<byte> ptrs = stackalloc byte[8 * 32];
        int n = RemoteMemory.Read(tid, address, ptrs);
        for (int i = 0; i + 8 <= n; i += 8)
        {
            ulong p = BinaryPrimitives.ReadUInt64LittleEndian(ptrs[i..]);
            if (p == 0) return "[" + string.Join(", ", parts) + "]";
            parts.Add(QuotedCString(tid, p, 4096));
        }
        return "[" + string.Join(", ", parts) + ", ...]";
    }

    private static int CountPointers(int tid, ulong address)
    {
        Span<byte> ptrs = stackalloc byte[8 * 512];
        int n = RemoteMemory.Read(tid, address, ptrs);
        for (int i = 0; i + 8 <= n; i += 8)
            if (BinaryPrimitives.ReadUInt64LittleEndian(ptrs[i..]) == 0) return i / 8;
        return n / 8;
    }

    private static string Flags(ulong v, (ulong Bit, string Name)[] names, string zero)
    {
        if (v == 0) return zero;
        var parts = new List<string>();
        foreach (var (bit, name) in names)
            if (bit != 0 && (v & bit) == bit) { parts.Add(name); v &= ~bit; }
        if (v != 0) parts.Add($"0x{v:x}");
        return string.Join("|", parts);
    }

    private static readonly (ulong, string)[] ProtNames = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x10, "PROT_BTI"), (0x20, "PROT_MTE"), (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP")];

    private static readonly (ulong, string)[] OpenFlagNames =
    [
        (0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"), (0x800, "O_NONBLOCK"),
        (0x410000, "O_TMPFILE"), (0x101000, "O_SYNC"), (0x1000, "O_DSYNC"), (0x2000, "O_ASYNC"), (0x4000, "O_DIRECT"), (0x8000, "O_LARGEFILE"),
        (0x10000, "O_DIRECTORY"), (0x20000, "O_NOFOLLOW"), (0x40000, "O_NOATIME"), (0x80000, "O_CLOEXEC"), (0x200000, "O_PATH"),
    ];

    private static string OpenFlags(long v)
    {
        string acc = (v & 3) switch { 0 => "O_RDONLY", 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_ACCMODE" };
        ulong rest = (ulong)v & ~3UL;
        return rest == 0 ? acc : acc + "|" + Flags(rest, OpenFlagNames, "");
    }

    private static readonly (ulong, string)[] MapFlagNames =
    [
        (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
        (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
        (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"),
    ];

    private static string MapFlags(ulong v)
    {
        string type = (v & 0xf) switch { 1 => "MAP_SHARED", 2 => "MAP_PRIVATE", 3 => "MAP_SHARED_VALIDATE", 0 => "0", var t => $"0x{t:x}" };
        ulong rest = v & ~0xfUL;
        return rest == 0 ? type : type + "|" + Flags(rest, MapFlagNames, "");
    }

    private static readonly (ulong, string)[] CloneFlagNames =
    [
        (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
        (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
        (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"),
        (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"),
    ];

    private static string CloneFlags(ulong v)
    {
        int sig = (int)(v & 0xff);
        string flags = Flags(v & ~0xffUL, CloneFlagNames, "");
        if (sig == 0) return flags.Length == 0 ? "0" : flags;
        return flags.Length == 0 ? Signals.Name(sig) : flags + "|" + Signals.Name(sig);
    }

    private static string Clone3(int tid, ulong address)
    {
        // struct clone_args { u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, ... }
        Span<byte> b = stackalloc byte[64];
        if (RemoteMemory.Read(tid, address, b) < 64) return $"0x{address:x}";
        ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(b), exitSignal = BinaryPrimitives.ReadUInt64LittleEndian(b[32..]);
        ulong stack = BinaryPrimitives.ReadUInt64LittleEndian(b[40..]), size = BinaryPrimitives.ReadUInt64LittleEndian(b[48..]);
        string s = $"{{flags={Flags(flags, CloneFlagNames, "0")}";
        if (exitSignal != 0) s += $", exit_signal={Signals.Name((int)exitSignal)}";
        if (stack != 0) s += $", stack=0x{stack:x}, stack_size=0x{size:x}";
        return s + "}";
    }

    private static string FutexOp(int op)
    {
        string[] names = ["FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_FD", "FUTEX_REQUEUE", "FUTEX_CMP_REQUEUE", "FUTEX_WAKE_OP", "FUTEX_LOCK_PI",
            "FUTEX_UNLOCK_PI", "FUTEX_TRYLOCK_PI", "FUTEX_WAIT_BITSET", "FUTEX_WAKE_BITSET", "FUTEX_WAIT_REQUEUE_PI", "FUTEX_CMP_REQUEUE_PI", "FUTEX_LOCK_PI2"];
        int cmd = op & 0x7f;
        string s = cmd < names.Length ? names[cmd] : cmd.ToString();
        if ((op & 128) != 0) s += "_PRIVATE";
        if ((op & 256) != 0) s += "|FUTEX_CLOCK_REALTIME";
        return s;
    }

    private static readonly Dictionary<uint, string> IoctlNames = new()
    {
        [0x5401] = "TCGETS", [0x5402] = "TCSETS", [0x5403] = "TCSETSW", [0x5404] = "TCSETSF", [0x540B] = "TCFLSH", [0x540E] = "TIOCSCTTY",
        [0x540F] = "TIOCGPGRP", [0x5410] = "TIOCSPGRP", [0x5413] = "TIOCGWINSZ", [0x5414] = "TIOCSWINSZ", [0x541B] = "FIONREAD",
        [0x5421] = "FIONBIO", [0x5422] = "TIOCNOTTY", [0x5450] = "FIONCLEX", [0x5451] = "FIOCLEX", [0x5452] = "FIOASYNC",
        [0x80045430] = "TIOCGPTN", [0x40045431] = "TIOCSPTLCK", [0x8912] = "SIOCGIFCONF", [0x8933] = "SIOCGIFINDEX", [0x8927] = "SIOCGIFHWADDR",
        [0x80081272] = "BLKGETSIZE64", [0x1260] = "BLKGETSIZE", [0x40086602] = "FS_IOC_SETFLAGS", [0x80086601] = "FS_IOC_GETFLAGS",
        [0x5441] = "TIOCGPTPEER",
    };

    private static readonly Dictionary<int, string> FcntlNames = new()
    {
        [0] = "F_DUPFD", [1] = "F_GETFD", [2] = "F_SETFD", [3] = "F_GETFL", [4] = "F_SETFL", [5] = "F_GETLK", [6] = "F_SETLK", [7] = "F_SETLKW",
        [8] = "F_SETOWN", [9] = "F_GETOWN", [10] = "F_SETSIG", [11] = "F_GETSIG", [1024] = "F_SETLEASE", [1025] = "F_GETLEASE", [1026] = "F_NOTIFY",
        [1030] = "F_DUPFD_CLOEXEC", [1031] = "F_SETPIPE_SZ", [1032] = "F_GETPIPE_SZ", [1033] = "F_ADD_SEALS", [1034] = "F_GET_SEALS",
        [36] = "F_OFD_GETLK", [37] = "F_OFD_SETLK", [38] = "F_OFD_SETLKW",
    };

    private static readonly (ulong, string)[] AccessNames = [(1, "X_OK"), (2, "W_OK"), (4, "R_OK")];

    private static readonly (ulong, string)[] AtFlagNames = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH"), (0x2000, "AT_STATX_FORCE_SYNC"), (0x4000, "AT_STATX_DONT_SYNC")];

    private static readonly Dictionary<int, string> DomainNames = new()
    {
        [0] = "AF_UNSPEC", [1] = "AF_UNIX", [2] = "AF_INET", [10] = "AF_INET6", [16] = "AF_NETLINK", [17] = "AF_PACKET", [38] = "AF_ALG", [40] = "AF_VSOCK",
    };

    private static string SockType(ulong v)
    {
        string t = (v & 0xf) switch { 1 => "SOCK_STREAM", 2 => "SOCK_DGRAM", 3 => "SOCK_RAW", 4 => "SOCK_RDM", 5 => "SOCK_SEQPACKET", 6 => "SOCK_DCCP", 10 => "SOCK_PACKET", 0 => "0", var x => x.ToString() };
        if ((v & 0x80000) != 0) t += "|SOCK_CLOEXEC";
        if ((v & 0x800) != 0) t += "|SOCK_NONBLOCK";
        return t;
    }

    private static readonly (ulong, string)[] WaitOptionNames = [(1, "WNOHANG"), (2, "WSTOPPED"), (4, "WEXITED"), (8, "WCONTINUED"), (0x1000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"), (0x80000000, "__WCLONE")];

    private static string SockAddr(int tid, ulong address, int length)
    {
        if (length < 2) return $"0x{address:x}";
        var b = new byte[Math.Min(length, 128)];
        int n = RemoteMemory.Read(tid, address, b);
        if (n < 2) return $"0x{address:x}";
        int family = BinaryPrimitives.ReadUInt16LittleEndian(b);
        string fam = DomainNames.TryGetValue(family, out var f) ? f : family.ToString();
        switch (family)
        {
            case 2 when n >= 8:
                return $"{{sa_family={fam}, sin_port=htons({BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2))}), sin_addr=inet_addr(\"{b[4]}.{b[5]}.{b[6]}.{b[7]}\")}}";
            case 10 when n >= 24:
                return $"{{sa_family={fam}, sin6_port=htons({BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(2))}), sin6_addr={new System.Net.IPAddress(b.AsSpan(8, 16))}}}";
            case 1:
                {
                    var path = b.AsSpan(2, n - 2);
                    bool abstractName = path.Length > 0 && path[0] == 0;
                    if (abstractName) path = path[1..];
                    int nul = path.IndexOf((byte)0);
                    if (nul >= 0) path = path[..nul];
                    return $"{{sa_family={fam}, sun_path={(abstractName ? "@" : "")}{Quote(path)}}}";
                }
            default:
                return $"{{sa_family={fam}}}";
        }
    }

    private static string WaitStatus(int tid, ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        if (RemoteMemory.Read(tid, address, b) < 4) return $"0x{address:x}";
        int s = BinaryPrimitives.ReadInt32LittleEndian(b);
        string d;
        if ((s & 0x7f) == 0) d = $"WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xff}";
        else if ((s & 0xff) == 0x7f) d = $"WIFSTOPPED(s) && WSTOPSIG(s) == {Signals.Name((s >> 8) & 0xff)}";
        else if (s == 0xffff) d = "WIFCONTINUED(s)";
        else d = $"WIFSIGNALED(s) && WTERMSIG(s) == {Signals.Name(s & 0x7f)}{((s & 0x80) != 0 ? " && WCOREDUMP(s)" : "")}";
        return $"[{{{d}}}]";
    }

    private static string PipeFds(int tid, ulong address)
    {
        Span<byte> b = stackalloc byte[8];
        if (RemoteMemory.Read(tid, address, b) < 8) return $"0x{address:x}";
        return $"[{BinaryPrimitives.ReadInt32LittleEndian(b)}, {BinaryPrimitives.ReadInt32LittleEndian(b[4..])}]";
    }

    private static string SigAction(int tid, ulong address)
    {
        // struct kernel_sigaction (x86_64): sa_handler, sa_flags, sa_restorer, sa_mask
        Span<byte> b = stackalloc byte[32];
        if (RemoteMemory.Read(tid, address, b) < 32) return $"0x{address:x}";
        ulong handler = BinaryPrimitives.ReadUInt64LittleEndian(b), flags = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
        string h = handler switch { 0 => "SIG_DFL", 1 => "SIG_IGN", _ => $"0x{handler:x}" };
        (ulong, string)[] saNames = [(1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"), (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND")];
        return $"{{sa_handler={h}, sa_flags={Flags(flags, saNames, "0")}}}";
    }

    private static string Stat(int tid, ulong address)
    {
        // struct stat (x86_64): st_dev 0, st_ino 8, st_nlink 16, st_mode 24 (u32), st_uid 28, st_gid 32, st_rdev 40, st_size 48
        Span<byte> b = stackalloc byte[56];
        if (RemoteMemory.Read(tid, address, b) < 56) return $"0x{address:x}";
        uint mode = BinaryPrimitives.ReadUInt32LittleEndian(b[24..]);
        long size = BinaryPrimitives.ReadInt64LittleEndian(b[48..]);
        string type = (mode & 0xf000) switch
        {
            0x8000 => "S_IFREG", 0x4000 => "S_IFDIR", 0xa000 => "S_IFLNK", 0x2000 => "S_IFCHR", 0x6000 => "S_IFBLK", 0x1000 => "S_IFIFO", 0xc000 => "S_IFSOCK", _ => "0",
        };
        string perm = "0" + Convert.ToString(mode & 0xfff, 8).PadLeft(3, '0');
        return (mode & 0xf000) is 0x2000 or 0x6000
            ? $"{{st_mode={type}|{perm}, st_rdev=0x{BinaryPrimitives.ReadUInt64LittleEndian(b[40..]):x}, ...}}"
            : $"{{st_mode={type}|{perm}, st_size={size}, ...}}";
    }
}
