using System.Text;

namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>The decoder's pure formatters: strace's quoting and the flag and constant names, which read nothing of the tracee.</summary>
public sealed partial class SyscallDecoder
{
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
}
