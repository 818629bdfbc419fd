using System.Runtime.InteropServices;

namespace PSLinuxTrace.Engine.Interop;

/// <summary>
/// The bpf(2) system call (no libbpf): the commands Watch-Exec needs, with their union bpf_attr
/// layouts from include/uapi/linux/bpf.h. Each attr struct is the prefix of union bpf_attr that the
/// command reads; the kernel zero-extends a shorter attr (kernel/bpf/syscall.c, bpf_check_uarg_tail_zero).
/// </summary>
internal static unsafe partial class Bpf
{
    internal const int BPF_MAP_CREATE = 0, BPF_MAP_LOOKUP_ELEM = 1, BPF_MAP_UPDATE_ELEM = 2, BPF_PROG_LOAD = 5,
        BPF_OBJ_GET_INFO_BY_FD = 15;

    internal const uint BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_RINGBUF = 27;
    internal const uint BPF_PROG_TYPE_TRACEPOINT = 5;
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

    /// <summary>bpf(cmd, attr, sizeof attr); returns the result or -1 with errno set.</summary>
    internal static long Call<T>(int cmd, ref T attr) where T : unmanaged
    {
        fixed (T* p = &attr)
            return syscall3(Nr, cmd, p, sizeof(T));
    }
}
