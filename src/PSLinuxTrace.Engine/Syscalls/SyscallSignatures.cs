namespace PSLinuxTrace.Engine.Syscalls;

/// <summary>How one argument is shown (strace's printers, by the kind of value the kernel takes).</summary>
internal enum ArgKind
{
    Int, UInt, Hex, Ptr, Fd, DirFd, Path, InBuf, OutBuf, OpenFlags, Mode, Prot, MapFlags, CloneFlags, Signal,
    Argv, Envp, FutexOp, Ioctl, Fcntl, Whence, AccessMode, AtFlags, SockDomain, SockType, SockAddr, SockAddrOut,
    WaitOptions, WaitStatusOut, PipeFdsOut, SigHow, SigAction, StatOut, PidSelf, Clone3Args, MsFlags, CloseRangeFlags,
}

/// <summary>One argument: its printer and, for buffers and socket addresses, which argument holds the length.</summary>
internal readonly record struct ArgSpec(ArgKind Kind, int LengthArg = -1)
{
    /// <summary>Output arguments are filled by the kernel: decode them at syscall exit (and only on success).</summary>
    public bool IsOutput => Kind is ArgKind.OutBuf or ArgKind.SockAddrOut or ArgKind.WaitStatusOut or ArgKind.PipeFdsOut or ArgKind.StatOut;
}

/// <summary>
/// Argument signatures (architecture-neutral: keyed by name) for the calls strace decodes most often.
/// Calls not listed show their arguments in hex, as strace does for calls it does not know.
/// </summary>
internal static class SyscallSignatures
{
    private static readonly Dictionary<string, ArgSpec[]> Table = Build();

    public static ArgSpec[]? Get(string name) => Table.TryGetValue(name, out var s) ? s : null;

    /// <summary>Calls that return a new file descriptor (shown as fd&lt;path&gt; like strace -y).</summary>
    public static bool ReturnsFd(string name) => name is "open" or "openat" or "openat2" or "creat" or "socket" or "accept" or "accept4"
        or "dup" or "dup2" or "dup3" or "epoll_create" or "epoll_create1" or "eventfd" or "eventfd2" or "memfd_create" or "pidfd_open"
        or "signalfd" or "signalfd4" or "timerfd_create" or "inotify_init" or "inotify_init1" or "userfaultfd" or "perf_event_open" or "bpf_never";

    /// <summary>Calls that return an address (shown in hex).</summary>
    public static bool ReturnsAddress(string name) => name is "mmap" or "brk" or "mremap" or "shmat";

    /// <summary>Calls that do not return to the caller on success.</summary>
    public static bool NeverReturns(string name) => name is "exit" or "exit_group";

    private static Dictionary<string, ArgSpec[]> Build()
    {
        // One line per call: the printers, comma-separated; "inbuf:2" means the length is argument 2.
        var specs = new Dictionary<string, string>
        {
            ["read"] = "fd,outbuf:2,uint", ["write"] = "fd,inbuf:2,uint", ["pread64"] = "fd,outbuf:2,uint,int", ["pwrite64"] = "fd,inbuf:2,uint,int",
            ["readv"] = "fd,ptr,int", ["writev"] = "fd,ptr,int",
            ["open"] = "path,oflags,mode", ["openat"] = "dirfd,path,oflags,mode", ["creat"] = "path,mode", ["openat2"] = "dirfd,path,ptr,uint",
            ["close"] = "fd", ["close_range"] = "uint,uint,crflags",
            ["stat"] = "path,statout", ["lstat"] = "path,statout", ["fstat"] = "fd,statout", ["newfstatat"] = "dirfd,path,statout,atflags",
            ["statx"] = "dirfd,path,atflags,hex,ptr", ["access"] = "path,amode", ["faccessat"] = "dirfd,path,amode", ["faccessat2"] = "dirfd,path,amode,atflags",
            ["lseek"] = "fd,int,whence",
            ["mmap"] = "ptr,uint,prot,mapflags,fd,hex", ["mprotect"] = "ptr,uint,prot", ["munmap"] = "ptr,uint", ["brk"] = "ptr",
            ["mremap"] = "ptr,uint,uint,hex,ptr", ["madvise"] = "ptr,uint,int",
            ["execve"] = "path,argv,envp", ["execveat"] = "dirfd,path,argv,envp,atflags",
            ["clone"] = "cloneflags,ptr,ptr,ptr,hex", ["clone3"] = "clone3,uint", ["fork"] = "", ["vfork"] = "",
            ["wait4"] = "int,waitstatus,waitopts,ptr", ["kill"] = "int,signal", ["tkill"] = "int,signal", ["tgkill"] = "int,int,signal",
            ["exit"] = "int", ["exit_group"] = "int",
            ["rt_sigaction"] = "signal,sigaction,ptr,uint", ["rt_sigprocmask"] = "sighow,ptr,ptr,uint", ["rt_sigreturn"] = "",
            ["socket"] = "sockdomain,socktype,int", ["connect"] = "fd,sockaddr:2,uint", ["bind"] = "fd,sockaddr:2,uint", ["listen"] = "fd,int",
            ["accept"] = "fd,sockaddrout,ptr", ["accept4"] = "fd,sockaddrout,ptr,socktype",
            ["sendto"] = "fd,inbuf:2,uint,hex,sockaddr:5,uint", ["recvfrom"] = "fd,outbuf:2,uint,hex,sockaddrout,ptr",
            ["sendmsg"] = "fd,ptr,hex", ["recvmsg"] = "fd,ptr,hex", ["shutdown"] = "fd,int",
            ["getsockname"] = "fd,sockaddrout,ptr", ["getpeername"] = "fd,sockaddrout,ptr",
            ["setsockopt"] = "fd,int,int,ptr,uint", ["getsockopt"] = "fd,int,int,ptr,ptr",
            ["ioctl"] = "fd,ioctl,hex", ["fcntl"] = "fd,fcntl,hex",
            ["dup"] = "fd", ["dup2"] = "fd,int", ["dup3"] = "fd,int,oflags", ["pipe"] = "pipefds", ["pipe2"] = "pipefds,oflags",
            ["getdents64"] = "fd,ptr,uint", ["getdents"] = "fd,ptr,uint",
            ["futex"] = "ptr,futexop,int,ptr,ptr,int",
            ["getpid"] = "", ["getppid"] = "", ["gettid"] = "", ["getuid"] = "", ["geteuid"] = "", ["getgid"] = "", ["getegid"] = "",
            ["chdir"] = "path", ["fchdir"] = "fd", ["mkdir"] = "path,mode", ["mkdirat"] = "dirfd,path,mode", ["rmdir"] = "path",
            ["unlink"] = "path", ["unlinkat"] = "dirfd,path,atflags", ["rename"] = "path,path", ["renameat2"] = "dirfd,path,dirfd,path,uint",
            ["readlink"] = "path,outbuf:2,uint", ["readlinkat"] = "dirfd,path,outbuf:3,uint", ["chmod"] = "path,mode", ["fchmod"] = "fd,mode",
            ["fchmodat"] = "dirfd,path,mode", ["symlink"] = "path,path", ["link"] = "path,path", ["truncate"] = "path,int", ["ftruncate"] = "fd,int",
            ["getcwd"] = "outbuf:1,uint", ["fsync"] = "fd", ["fdatasync"] = "fd", ["flock"] = "fd,int",
            ["nanosleep"] = "ptr,ptr", ["clock_nanosleep"] = "int,hex,ptr,ptr", ["sched_yield"] = "", ["pause"] = "",
            ["set_tid_address"] = "ptr", ["set_robust_list"] = "ptr,uint", ["arch_prctl"] = "hex,ptr", ["prlimit64"] = "int,int,ptr,ptr",
            ["getrandom"] = "ptr,uint,hex", ["rseq"] = "ptr,uint,int,hex", ["uname"] = "ptr", ["umask"] = "mode",
            ["eventfd2"] = "uint,oflags", ["epoll_create1"] = "oflags", ["memfd_create"] = "path,hex", ["sendfile"] = "fd,fd,ptr,uint",
            ["poll"] = "ptr,uint,int", ["ppoll"] = "ptr,uint,ptr,ptr,uint", ["select"] = "int,ptr,ptr,ptr,ptr",
            ["mount"] = "path,path,path,msflags,ptr", ["umount2"] = "path,hex", ["chroot"] = "path",
        };
        var result = new Dictionary<string, ArgSpec[]>(StringComparer.Ordinal);
        foreach (var (name, spec) in specs)
            result[name] = spec.Length == 0 ? [] : spec.Split(',').Select(ParseOne).ToArray();
        return result;
    }

    private static ArgSpec ParseOne(string token)
    {
        string[] parts = token.Split(':');
        int len = parts.Length > 1 ? int.Parse(parts[1]) : -1;
        ArgKind kind = parts[0] switch
        {
            "int" => ArgKind.Int, "uint" => ArgKind.UInt, "hex" => ArgKind.Hex, "ptr" => ArgKind.Ptr, "fd" => ArgKind.Fd, "dirfd" => ArgKind.DirFd,
            "path" => ArgKind.Path, "inbuf" => ArgKind.InBuf, "outbuf" => ArgKind.OutBuf, "oflags" => ArgKind.OpenFlags, "mode" => ArgKind.Mode,
            "prot" => ArgKind.Prot, "mapflags" => ArgKind.MapFlags, "cloneflags" => ArgKind.CloneFlags, "signal" => ArgKind.Signal,
            "argv" => ArgKind.Argv, "envp" => ArgKind.Envp, "futexop" => ArgKind.FutexOp, "ioctl" => ArgKind.Ioctl, "fcntl" => ArgKind.Fcntl,
            "whence" => ArgKind.Whence, "amode" => ArgKind.AccessMode, "atflags" => ArgKind.AtFlags, "sockdomain" => ArgKind.SockDomain,
            "socktype" => ArgKind.SockType, "sockaddr" => ArgKind.SockAddr, "sockaddrout" => ArgKind.SockAddrOut, "waitopts" => ArgKind.WaitOptions,
            "waitstatus" => ArgKind.WaitStatusOut, "pipefds" => ArgKind.PipeFdsOut, "sighow" => ArgKind.SigHow, "sigaction" => ArgKind.SigAction,
            "statout" => ArgKind.StatOut, "clone3" => ArgKind.Clone3Args, "msflags" => ArgKind.MsFlags, "crflags" => ArgKind.CloseRangeFlags,
            _ => throw new InvalidOperationException($"bad signature token {token}"),
        };
        return new ArgSpec(kind, len);
    }
}
