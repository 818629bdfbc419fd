using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// The bpf(2) system call (no libbpf): the commands our loader needs, with their union bpf_attr
/// layouts from include/uapi/linux/bpf.h. Each attr struct is the prefix of union bpf_attr that the
/// command reads; the kernel zero-extends a shorter attr (kernel/bpf/syscall.c, bpf_check_uarg_tail_zero).
/// </summary>
internal static unsafe partial class Bpf
{
    internal const int BPF_MAP_CREATE = 0, BPF_MAP_LOOKUP_ELEM = 1, BPF_MAP_UPDATE_ELEM = 2, BPF_MAP_DELETE_ELEM = 3,
        BPF_MAP_GET_NEXT_KEY = 4, BPF_PROG_LOAD = 5, BPF_OBJ_GET_INFO_BY_FD = 15, BPF_RAW_TRACEPOINT_OPEN = 17, BPF_BTF_LOAD = 18;

    internal const uint BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_PERCPU_HASH = 5, BPF_MAP_TYPE_PERCPU_ARRAY = 6,
        BPF_MAP_TYPE_RINGBUF = 27;
    internal const uint BPF_PROG_TYPE_TRACEPOINT = 5, BPF_PROG_TYPE_RAW_TRACEPOINT = 17;
    internal const ulong BPF_ANY = 0;

    // struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }
    internal const int InsnSize = 8;
    internal const byte BPF_LD_IMM64 = 0x18;     // BPF_LD | BPF_DW | BPF_IMM
    internal const byte BPF_PSEUDO_MAP_FD = 1;

    [StructLayout(LayoutKind.Sequential)]
    internal struct MapCreateAttr
    {
        public uint map_type;
        public uint key_size;
        public uint value_size;
        public uint max_entries;
        public uint map_flags;
        public uint inner_map_fd;
        public uint numa_node;
        public fixed byte map_name[16];            // BPF_OBJ_NAME_LEN
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct MapElemAttr
    {
        public uint map_fd;
        public uint pad;
        public ulong key;                          // __aligned_u64
        public ulong value;                        // __aligned_u64 (or next_key)
        public ulong flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct ProgLoadAttr
    {
        public uint prog_type;
        public uint insn_cnt;
        public ulong insns;
        public ulong license;
        public uint log_level;
        public uint log_size;
        public ulong log_buf;
        public uint kern_version;
        public uint prog_flags;
        public fixed byte prog_name[16];
        public uint prog_ifindex;
        public uint expected_attach_type;
        public uint prog_btf_fd;
        public uint func_info_rec_size;
        public ulong func_info;                    // struct bpf_func_info { u32 insn_off; u32 type_id; }[]
        public uint func_info_cnt;
        public uint line_info_rec_size;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfLoadAttr
    {
        public ulong btf;
        public ulong btf_log_buf;
        public uint btf_size;
        public uint btf_log_size;
        public uint btf_log_level;
        public uint pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct RawTracepointOpenAttr
    {
        public ulong name;                         // __aligned_u64: the tracepoint's name, NUL-terminated
        public uint prog_fd;
        public uint pad;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct ObjGetInfoAttr
    {
        public uint bpf_fd;
        public uint info_len;
        public ulong info;
    }

    /// <summary>Prefix of struct bpf_prog_info: enough for the id and name.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct ProgInfo
    {
        public uint type;
        public uint id;
        public fixed byte tag[8];
        public uint jited_prog_len;
        public uint xlated_prog_len;
        public ulong jited_prog_insns;
        public ulong xlated_prog_insns;
        public ulong load_time;
        public uint created_by_uid;
        public uint nr_map_ids;
        public ulong map_ids;
        public fixed byte name[16];
    }

    private static long Nr => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 => 280,
        var a => throw new UnsupportedFeatureException($"bpf() on {a}"),
    };

    [LibraryImport(LibC.Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall3(long number, long cmd, void* attr, long size);

    // The commands with pointers in their attr, wrapped over spans so that no caller outside Interop
    // needs unsafe code. Each returns the bpf() result, or -1 with errno set.

    /// <summary>BPF_MAP_CREATE; <paramref name="name"/> is cut to 15 bytes (BPF_OBJ_NAME_LEN with its NUL).</summary>
    internal static long MapCreate(uint type, uint keySize, uint valueSize, uint maxEntries, uint flags, ReadOnlySpan<byte> name)
    {
        var attr = new MapCreateAttr { map_type = type, key_size = keySize, value_size = valueSize, max_entries = maxEntries, map_flags = flags };
        for (int i = 0; i < Math.Min(name.Length, 15); i++) attr.map_name[i] = name[i];
        return Call(BPF_MAP_CREATE, ref attr);
    }

    /// <summary>BPF_MAP_UPDATE_ELEM: sets the value of <paramref name="key"/>.</summary>
    internal static long MapUpdate(int mapFd, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var attr = new MapElemAttr { map_fd = (uint)mapFd, key = (ulong)k, value = (ulong)v, flags = flags };
            return Call(BPF_MAP_UPDATE_ELEM, ref attr);
        }
    }

    /// <summary>BPF_MAP_LOOKUP_ELEM: the kernel writes the value of <paramref name="key"/> into <paramref name="value"/>.</summary>
    internal static long MapLookup(int mapFd, ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var attr = new MapElemAttr { map_fd = (uint)mapFd, key = (ulong)k, value = (ulong)v };
            return Call(BPF_MAP_LOOKUP_ELEM, ref attr);
        }
    }

    /// <summary>BPF_MAP_DELETE_ELEM: removes <paramref name="key"/>.</summary>
    internal static long MapDelete(int mapFd, ReadOnlySpan<byte> key)
    {
        fixed (byte* k = key)
        {
            var attr = new MapElemAttr { map_fd = (uint)mapFd, key = (ulong)k };
            return Call(BPF_MAP_DELETE_ELEM, ref attr);
        }
    }

    /// <summary>BPF_MAP_GET_NEXT_KEY: the key after <paramref name="key"/> (the first key when it is empty); -1 with ENOENT after the last.</summary>
    internal static long MapNextKey(int mapFd, ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        fixed (byte* k = key)
        fixed (byte* n = nextKey)
        {
            var attr = new MapElemAttr { map_fd = (uint)mapFd, key = key.IsEmpty ? 0 : (ulong)k, value = (ulong)n };
            return Call(BPF_MAP_GET_NEXT_KEY, ref attr);
        }
    }

    /// <summary>BPF_RAW_TRACEPOINT_OPEN: attaches a raw tracepoint program; returns the link fd (closing it detaches).</summary>
    internal static long RawTracepointOpen(ReadOnlySpan<byte> nulTerminatedName, int progFd)
    {
        fixed (byte* n = nulTerminatedName)
        {
            var attr = new RawTracepointOpenAttr { name = (ulong)n, prog_fd = (uint)progFd };
            return Call(BPF_RAW_TRACEPOINT_OPEN, ref attr);
        }
    }

    /// <summary>
    /// BPF_PROG_LOAD. <paramref name="license"/> ends with its NUL; <paramref name="name"/> is cut to 15
    /// bytes of [A-Za-z0-9_.] (the only ones the kernel accepts in object names); an empty
    /// <paramref name="log"/> asks for no verifier log, a buffer for a level-1 log.
    /// </summary>
    internal static long ProgLoad(uint progType, ReadOnlySpan<byte> instructions, ReadOnlySpan<byte> license, ReadOnlySpan<byte> name, Span<byte> log) =>
        ProgLoad(progType, instructions, license, name, log, -1, ReadOnlySpan<byte>.Empty);

    /// <summary>
    /// BPF_PROG_LOAD with the BTF of the program's functions (<paramref name="btfFd"/>, from
    /// <see cref="BtfLoad"/>) and <paramref name="funcInfo"/>, 8-byte struct bpf_func_info records:
    /// what the verifier requires of a program with bpf_loop callbacks.
    /// </summary>
    internal static long ProgLoad(uint progType, ReadOnlySpan<byte> instructions, ReadOnlySpan<byte> license, ReadOnlySpan<byte> name, Span<byte> log,
        int btfFd, ReadOnlySpan<byte> funcInfo)
    {
        fixed (byte* i = instructions)
        fixed (byte* l = license)
        fixed (byte* lb = log)
        fixed (byte* fi = funcInfo)
        {
            var attr = new ProgLoadAttr
            {
                prog_type = progType, insn_cnt = (uint)(instructions.Length / InsnSize), insns = (ulong)i, license = (ulong)l,
                prog_btf_fd = btfFd < 0 ? 0u : (uint)btfFd, func_info_rec_size = funcInfo.IsEmpty ? 0u : 8u,
                func_info = funcInfo.IsEmpty ? 0 : (ulong)fi, func_info_cnt = (uint)(funcInfo.Length / 8),
                log_level = log.IsEmpty ? 0u : 1u, log_size = (uint)log.Length, log_buf = log.IsEmpty ? 0 : (ulong)lb,
            };
            for (int k = 0; k < Math.Min(name.Length, 15); k++)
            {
                byte c = name[k];
                attr.prog_name[k] = char.IsAsciiLetterOrDigit((char)c) || c == '_' || c == '.' ? c : (byte)'_';
            }
            return Call(BPF_PROG_LOAD, ref attr);
        }
    }

    /// <summary>BPF_BTF_LOAD: returns the BTF object's fd, or -1 with errno set; a non-empty <paramref name="log"/> gets the kernel's complaints.</summary>
    internal static long BtfLoad(ReadOnlySpan<byte> btf, Span<byte> log)
    {
        fixed (byte* b = btf)
        fixed (byte* lb = log)
        {
            var attr = new BtfLoadAttr
            {
                btf = (ulong)b, btf_size = (uint)btf.Length,
                btf_log_buf = log.IsEmpty ? 0 : (ulong)lb, btf_log_size = (uint)log.Length, btf_log_level = log.IsEmpty ? 0u : 1u,
            };
            return Call(BPF_BTF_LOAD, ref attr);
        }
    }

    /// <summary>BPF_OBJ_GET_INFO_BY_FD on a program: its kernel id (what `bpftool prog show` lists), or -1 with errno set.</summary>
    internal static long ProgId(int progFd)
    {
        var info = new ProgInfo();
        var attr = new ObjGetInfoAttr { bpf_fd = (uint)progFd, info_len = (uint)sizeof(ProgInfo), info = (ulong)&info };
        long r = Call(BPF_OBJ_GET_INFO_BY_FD, ref attr);
        return r < 0 ? r : info.id;
    }

    /// <summary>bpf(cmd, attr, sizeof attr); returns the result or -1 with errno set.</summary>
    internal static long Call<T>(int cmd, ref T attr) where T : unmanaged
    {
        fixed (T* p = &attr)
            return syscall3(Nr, cmd, p, sizeof(T));
    }
}
