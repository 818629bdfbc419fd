using System.Buffers.Binary;
using System.Text;

namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>
/// Turns raw syscall arguments into strace's text: strings read from the tracee, flag names, the
/// common structs, and file descriptors with their paths (strace -y). Input arguments are decoded at
/// syscall entry (before execve replaces the memory, before close drops the fd); output arguments at
/// exit. What it reads of the tracee comes through an <see cref="ITraceeState"/>: live memory for
/// the ptrace engine, the kernel program's copies for the eBPF engine, the same text from both.
/// </summary>
public sealed partial class SyscallDecoder
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
    private string CwdSuffix(ITraceeState t)
    {
        if (CacheFdPaths && _fdPaths.TryGetValue(Key(_tgid, -100), out var cached)) return cached;
        string? target = t.WorkingDirectory();
        string text = target is null ? "" : $"<{target}>";
        if (CacheFdPaths && target is not null) _fdPaths[Key(_tgid, -100)] = text;
        return text;
    }

    private static long Key(int tgid, long fd) => ((long)tgid << 32) | (uint)fd;

    /// <summary>Decodes what is known at entry; output arguments are left null.</summary>
    public string?[] DecodeEntry(int tid, string name, ulong[] args) => DecodeEntry(new LiveTracee(tid), name, args);

    /// <inheritdoc cref="DecodeEntry(int, string, ulong[])"/>
    public string?[] DecodeEntry(ITraceeState tracee, string name, ulong[] args)
    {
        var specs = SyscallSignatures.Get(name);
        if (specs is null) return Unknown(args);
        int count = specs.Length;
        // strace shows open's mode only when the call can create a file (O_CREAT or O_TMPFILE).
        const ulong creates = 0x40 | 0x410000;
        if ((name is "open" && (args[1] & creates) == 0) || (name is "openat" && (args[2] & creates) == 0)) count--;
        var result = new string?[count];
        for (int i = 0; i < count; i++)
            if (!specs[i].IsOutput) result[i] = Safe(() => Format(tracee, specs[i], args, i, 0));
        return result;
    }

    /// <summary>Fills the output arguments once the call returned <paramref name="ret"/>.</summary>
    public string[] DecodeExit(int tid, string name, ulong[] args, string?[] entry, long ret, bool failed) =>
        DecodeExit(new LiveTracee(tid), name, args, entry, ret, failed);

    /// <inheritdoc cref="DecodeExit(int, string, ulong[], string?[], long, bool)"/>
    public string[] DecodeExit(ITraceeState tracee, string name, ulong[] args, string?[] entry, long ret, bool failed)
    {
        var specs = SyscallSignatures.Get(name);
        var result = new string[entry.Length];
        for (int i = 0; i < entry.Length; i++)
        {
            if (entry[i] is { } s) { result[i] = s; continue; }
            var spec = specs![i];
            result[i] = failed ? Pointer(args[i]) : Safe(() => Format(tracee, spec, args, i, ret));
        }
        return result;
    }

    /// <summary>strace's return column: "3&lt;/etc/passwd&gt;", "0x7f...", "-1 ENOENT (No such file or directory)".</summary>
    public string FormatResult(int tid, string name, long ret, bool failed) => FormatResult(new LiveTracee(tid), name, ret, failed);

    /// <inheritdoc cref="FormatResult(int, string, long, bool)"/>
    public string FormatResult(ITraceeState tracee, string name, long ret, bool failed)
    {
        if (failed)
        {
            int e = (int)-ret;
            string en = Interop.Errno.Name(e);
            // 512-530 are the kernel's internal restart codes (ERESTARTSYS...), which strace prints by name too.
            return $"-1 {en} ({Describe(e)})";
        }
        if (SyscallSignatures.ReturnsAddress(name)) return $"0x{ret:x}";
        if (SyscallSignatures.ReturnsFd(name) && DecodeFdPaths) return FdWithPath(tracee, ret);
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

    /// <summary>What an argument shows when the eBPF engine has no true copy of its memory.</summary>
    public const string Unavailable = "<unavailable>";

    private static string Safe(Func<string> f)
    {
        try { return f(); }
        catch (TraceeMemoryUnavailableException) { return Unavailable; }
        catch (LinuxTraceException) { return "?"; }
        catch (IOException) { return "?"; }
    }

    private string Format(ITraceeState t, ArgSpec spec, ulong[] args, int i, long ret)
    {
        ulong v = args[i];
        switch (spec.Kind)
        {
            case ArgKind.Int: return ((long)v).ToString();
            case ArgKind.UInt: return v.ToString();
            case ArgKind.Hex: return $"0x{v:x}";
            case ArgKind.Ptr: return Pointer(v);
            case ArgKind.Fd: return DecodeFdPaths ? FdWithPath(t, (int)v) : ((int)v).ToString();
            case ArgKind.DirFd: return (int)v == -100 ? (DecodeFdPaths ? "AT_FDCWD" + CwdSuffix(t) : "AT_FDCWD") : DecodeFdPaths ? FdWithPath(t, (int)v) : ((int)v).ToString();
            case ArgKind.Path: return v == 0 ? "NULL" : QuotedCString(t, v, 4096);
            case ArgKind.InBuf: return v == 0 ? "NULL" : Buffer(t, v, (long)Math.Min(args[spec.LengthArg], int.MaxValue));
            case ArgKind.OutBuf: return v == 0 ? "NULL" : Buffer(t, v, ret);
            case ArgKind.OpenFlags: return OpenFlags((long)v);
            case ArgKind.Mode: return v == 0 ? "000" : "0" + Convert.ToString((long)(v & 0xffff), 8);
            case ArgKind.Prot: return Flags(v, ProtNames, "PROT_NONE");
            case ArgKind.MapFlags: return MapFlags(v);
            case ArgKind.CloneFlags: return CloneFlags(v);
            case ArgKind.Signal: return v == 0 ? "0" : Signals.Name((int)v);
            case ArgKind.Argv: return v == 0 ? "NULL" : StringArray(t, v);
            case ArgKind.Envp: return v == 0 ? "NULL" : $"0x{v:x} /* {CountPointers(t, v)} vars */";
            case ArgKind.FutexOp: return FutexOp((int)v);
            case ArgKind.Ioctl: return IoctlNames.TryGetValue((uint)v, out var io) ? io : $"0x{(uint)v:x}";
            case ArgKind.Fcntl: return FcntlNames.TryGetValue((int)v, out var fc) ? fc : ((int)v).ToString();
            case ArgKind.Whence: return v switch { 0 => "SEEK_SET", 1 => "SEEK_CUR", 2 => "SEEK_END", 3 => "SEEK_DATA", 4 => "SEEK_HOLE", _ => v.ToString() };
            case ArgKind.AccessMode: return v == 0 ? "F_OK" : Flags(v, AccessNames, "F_OK");
            case ArgKind.AtFlags: return Flags(v, AtFlagNames, "0");
            case ArgKind.SockDomain: return DomainNames.TryGetValue((int)v, out var d) ? d : v.ToString();
            case ArgKind.SockType: return SockType(v);
            case ArgKind.SockAddr: return v == 0 ? "NULL" : SockAddr(t, v, (int)Math.Min(args[spec.LengthArg], 128));
            case ArgKind.SockAddrOut: return v == 0 ? "NULL" : SockAddr(t, v, 128);
            case ArgKind.WaitOptions: return Flags(v, WaitOptionNames, "0");
            case ArgKind.WaitStatusOut: return v == 0 ? "NULL" : WaitStatus(t, v);
            case ArgKind.PipeFdsOut: return PipeFds(t, v);
            case ArgKind.SigHow: return v switch { 0 => "SIG_BLOCK", 1 => "SIG_UNBLOCK", 2 => "SIG_SETMASK", _ => v.ToString() };
            case ArgKind.SigAction: return v == 0 ? "NULL" : SigAction(t, v);
            case ArgKind.StatOut: return v == 0 ? "NULL" : Stat(t, v);
            case ArgKind.Clone3Args: return v == 0 ? "NULL" : Clone3(t, v);
            case ArgKind.MsFlags: return $"0x{v:x}";
            case ArgKind.CloseRangeFlags: return Flags(v, [(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")], "0");
            default: return $"0x{v:x}";
        }
    }

    private static string Pointer(ulong v) => v == 0 ? "NULL" : $"0x{v:x}";

    private string FdWithPath(ITraceeState t, long fd)
    {
        if (fd < 0) return fd.ToString();
        if (CacheFdPaths && _fdPaths.TryGetValue(Key(_tgid, fd), out var cached)) return cached;
        string? target = t.FdPath(fd);
        string text = target is null ? fd.ToString() : $"{fd}<{target}>";
        if (CacheFdPaths && target is not null) _fdPaths[Key(_tgid, fd)] = text;
        return text;
    }

    private static string QuotedCString(ITraceeState t, ulong address, int max)
    {
        byte[] bytes = t.ReadCString(address, max, out bool truncated);
        if (bytes.Length == 0 && !truncated && !Readable(t, address)) return $"0x{address:x}";
        return Quote(bytes) + (truncated ? "..." : "");
    }

    private static bool Readable(ITraceeState t, ulong address)
    {
        Span<byte> one = stackalloc byte[1];
        return t.Read(address, one) == 1;
    }

    private string Buffer(ITraceeState t, ulong address, long length)
    {
        if (length <= 0) return "\"\"";
        int want = (int)Math.Min(length, StringLimit);
        var data = new byte[want];
        int n = t.Read(address, data);
        if (n == 0) return $"0x{address:x}";
        return Quote(data.AsSpan(0, n)) + (length > StringLimit ? "..." : "");
    }

    private string StringArray(ITraceeState t, ulong address)
    {
        var parts = new List<string>();
        Span<byte> ptrs = stackalloc byte[8 * 32];
        int n = ReadPointers(t, address, ptrs);
        for (int i = 0; i + 8 <= n; i += 8)
        {
            ulong p = BinaryPrimitives.ReadUInt64LittleEndian(ptrs[i..]);
            if (p == 0) return "[" + string.Join(", ", parts) + "]";
            parts.Add(QuotedCString(t, p, 4096));
        }
        return "[" + string.Join(", ", parts) + ", ...]";
    }

    private static int CountPointers(ITraceeState t, ulong address)
    {
        Span<byte> ptrs = stackalloc byte[8 * 512];
        int n = ReadPointers(t, address, ptrs);
        for (int i = 0; i + 8 <= n; i += 8)
            if (BinaryPrimitives.ReadUInt64LittleEndian(ptrs[i..]) == 0) return i / 8;
        return n / 8;
    }

    /// <summary>
    /// A NULL-terminated pointer array, read a page at a time and no further than its NULL: what lies
    /// after the array is not the decoder's business, and may be memory the eBPF engine could not copy.
    /// </summary>
    private static int ReadPointers(ITraceeState t, ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int want = Math.Min(buffer.Length - done, 4096 - (int)((address + (ulong)done) & 4095));
            int n = t.Read(address + (ulong)done, buffer.Slice(done, want));
            for (int i = done & ~7; i + 8 <= done + n; i += 8)
                if (BinaryPrimitives.ReadUInt64LittleEndian(buffer[i..]) == 0) return i + 8;
            done += n;
            if (n < want) break;
        }
        return done;
    }

    private static string Clone3(ITraceeState t, ulong address)
    {
        // struct clone_args { u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, ... }
        Span<byte> b = stackalloc byte[64];
        if (t.Read(address, b) < 64) return $"0x{address:x}";
        ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(b), exitSignal = BinaryPrimitives.ReadUInt64LittleEndian(b[32..]);
        ulong stack = BinaryPrimitives.ReadUInt64LittleEndian(b[40..]), size = BinaryPrimitives.ReadUInt64LittleEndian(b[48..]);
        string s = $"{{flags={Flags(flags, CloneFlagNames, "0")}";
        if (exitSignal != 0) s += $", exit_signal={Signals.Name((int)exitSignal)}";
        if (stack != 0) s += $", stack=0x{stack:x}, stack_size=0x{size:x}";
        return s + "}";
    }

    private static string SockAddr(ITraceeState t, ulong address, int length)
    {
        if (length < 2) return $"0x{address:x}";
        var b = new byte[Math.Min(length, 128)];
        int n = t.Read(address, b);
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

    private static string WaitStatus(ITraceeState t, ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        if (t.Read(address, b) < 4) return $"0x{address:x}";
        int s = BinaryPrimitives.ReadInt32LittleEndian(b);
        string d;
        if ((s & 0x7f) == 0) d = $"WIFEXITED(s) && WEXITSTATUS(s) == {(s >> 8) & 0xff}";
        else if ((s & 0xff) == 0x7f) d = $"WIFSTOPPED(s) && WSTOPSIG(s) == {Signals.Name((s >> 8) & 0xff)}";
        else if (s == 0xffff) d = "WIFCONTINUED(s)";
        else d = $"WIFSIGNALED(s) && WTERMSIG(s) == {Signals.Name(s & 0x7f)}{((s & 0x80) != 0 ? " && WCOREDUMP(s)" : "")}";
        return $"[{{{d}}}]";
    }

    private static string PipeFds(ITraceeState t, ulong address)
    {
        Span<byte> b = stackalloc byte[8];
        if (t.Read(address, b) < 8) return $"0x{address:x}";
        return $"[{BinaryPrimitives.ReadInt32LittleEndian(b)}, {BinaryPrimitives.ReadInt32LittleEndian(b[4..])}]";
    }

    private static string SigAction(ITraceeState t, ulong address)
    {
        // struct kernel_sigaction (x86_64): sa_handler, sa_flags, sa_restorer, sa_mask
        Span<byte> b = stackalloc byte[32];
        if (t.Read(address, b) < 32) return $"0x{address:x}";
        ulong handler = BinaryPrimitives.ReadUInt64LittleEndian(b), flags = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
        string h = handler switch { 0 => "SIG_DFL", 1 => "SIG_IGN", _ => $"0x{handler:x}" };
        (ulong, string)[] saNames = [(1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"), (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND")];
        return $"{{sa_handler={h}, sa_flags={Flags(flags, saNames, "0")}}}";
    }

    private static string Stat(ITraceeState t, ulong address)
    {
        // struct stat (x86_64): st_dev 0, st_ino 8, st_nlink 16, st_mode 24 (u32), st_uid 28, st_gid 32, st_rdev 40, st_size 48
        Span<byte> b = stackalloc byte[56];
        if (t.Read(address, b) < 56) return $"0x{address:x}";
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
