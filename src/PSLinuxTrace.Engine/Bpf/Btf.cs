using System.Buffers.Binary;
using System.Text;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>
/// A minimal reader of BTF type information (Documentation/bpf/btf.rst), enough to find the byte
/// offset of a field path such as "task_struct.real_parent" in the running kernel's
/// /sys/kernel/btf/vmlinux. This is what libbpf's CO-RE does for BPF_CORE_READ, done in the loader:
/// the BPF program reads the offsets from its config map, so nothing is compiled in for one kernel.
/// </summary>
public sealed class Btf
{
    public const string VmlinuxPath = "/sys/kernel/btf/vmlinux";

    // BTF_KIND_* (include/uapi/linux/btf.h)
    private const int KindInt = 1, KindPtr = 2, KindArray = 3, KindStruct = 4, KindUnion = 5, KindEnum = 6, KindFwd = 7,
        KindTypedef = 8, KindVolatile = 9, KindConst = 10, KindRestrict = 11, KindFunc = 12, KindFuncProto = 13,
        KindVar = 14, KindDatasec = 15, KindFloat = 16, KindDeclTag = 17, KindTypeTag = 18, KindEnum64 = 19;

    private readonly byte[] _data;
    private readonly int _typeStart, _strStart, _strLen;
    private readonly List<int> _typeOffsets = [0];   // type id -> offset of its struct btf_type (id 0 is void)
    private Dictionary<string, int>? _structsByName;

    private Btf(byte[] data)
    {
        _data = data;
        if (data.Length < 24 || BinaryPrimitives.ReadUInt16LittleEndian(data) != 0xEB9F)
            throw new BadInputFormatException("Not little-endian BTF data (bad magic).");
        uint hdrLen = U32(4), typeOff = U32(8), typeLen = U32(12), strOff = U32(16), strLen = U32(20);
        if ((ulong)hdrLen + typeOff + typeLen > (ulong)data.Length || (ulong)hdrLen + strOff + strLen > (ulong)data.Length)
            throw new BadInputFormatException("BTF header points outside the data.");
        _typeStart = (int)(hdrLen + typeOff);
        _strStart = (int)(hdrLen + strOff);
        _strLen = (int)strLen;
        int p = _typeStart, end = _typeStart + (int)typeLen;
        while (p < end)
        {
            if (p + 12 > end) throw new BadInputFormatException("BTF type record runs past the type section.");
            _typeOffsets.Add(p);
            uint info = U32(p + 4);
            int vlen = (int)(info & 0xffff), kind = (int)((info >> 24) & 0x1f);
            int size = 12 + kind switch
            {
                KindInt or KindVar or KindDeclTag => 4,
                KindArray => 12,
                KindStruct or KindUnion or KindDatasec or KindEnum64 => 12 * vlen,
                KindEnum or KindFuncProto => 8 * vlen,
                KindPtr or KindFwd or KindTypedef or KindVolatile or KindConst or KindRestrict or KindFunc or KindFloat or KindTypeTag => 0,
                _ => throw new BadInputFormatException($"Unknown BTF kind {kind} at offset {p}."),
            };
            // The members, parameters or enumerators that follow the record must lie in the section too (found by fuzzing).
            if (size > end - p) throw new BadInputFormatException($"BTF type {_typeOffsets.Count - 1} ({vlen} entries) runs past the type section.");
            p += size;
        }
    }

    /// <summary>Reads the running kernel's BTF; UnsupportedFeatureException when the kernel has none.</summary>
    public static Btf LoadVmlinux()
    {
        if (!File.Exists(VmlinuxPath))
            throw new UnsupportedFeatureException("Kernel BTF (" + VmlinuxPath + ")", "5.4",
                "the kernel was built without CONFIG_DEBUG_INFO_BTF; the eBPF cmdlets need it to read kernel structure fields portably");
        return new Btf(File.ReadAllBytes(VmlinuxPath));
    }

    public static Btf FromBytes(byte[] data) => new(data);

    public int TypeCount => _typeOffsets.Count - 1;

    private uint U32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_data.AsSpan(offset, 4));

    private string Str(uint off)
    {
        if (off >= _strLen) throw new BadInputFormatException($"BTF string offset {off} is out of bounds.");
        var span = _data.AsSpan(_strStart + (int)off, _strLen - (int)off);
        int nul = span.IndexOf((byte)0);
        return Encoding.ASCII.GetString(nul < 0 ? span : span[..nul]);
    }

    private int Kind(int id) => (int)((U32(_typeOffsets[id] + 4) >> 24) & 0x1f);
    private int Vlen(int id) => (int)(U32(_typeOffsets[id] + 4) & 0xffff);
    private bool KindFlag(int id) => (U32(_typeOffsets[id] + 4) >> 31) != 0;

    /// <summary>size for struct/union/int, referenced type id for ptr/typedef/const/...</summary>
    private uint SizeOrType(int id) => U32(_typeOffsets[id] + 8);

    /// <summary>The id of the named struct (or union) with members (not a forward declaration), or -1.</summary>
    public int FindStruct(string name)
    {
        if (_structsByName is null)
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int id = 1; id < _typeOffsets.Count; id++)
            {
                int k = Kind(id);
                if (k is KindStruct or KindUnion)
                {
                    string n = Str(U32(_typeOffsets[id]));
                    if (n.Length > 0 && (!d.TryGetValue(n, out int old) || Vlen(old) == 0)) d[n] = id;
                }
            }
            _structsByName = d;
        }
        return _structsByName.TryGetValue(name, out int found) ? found : -1;
    }

    /// <summary>Size in bytes of a struct/union type.</summary>
    public uint StructSize(string name)
    {
        int id = FindStruct(name);
        if (id < 0) throw new UnsupportedFeatureException($"struct {name} in kernel BTF", null, "the running kernel has no such type");
        return SizeOrType(id);
    }

    /// <summary>
    /// Byte offset of a dotted member path in a struct, following nested structs by value and
    /// looking through anonymous structs/unions, e.g. ("pid_namespace", "ns.inum").
    /// </summary>
    public uint MemberOffset(string structName, string path)
    {
        int id = FindStruct(structName);
        if (id < 0) throw new UnsupportedFeatureException($"struct {structName} in kernel BTF", null, "the running kernel has no such type");
        uint total = 0;
        foreach (string part in path.Split('.'))
        {
            if (!TryFindMember(id, part, out uint bitOffset, out int memberType))
                throw new UnsupportedFeatureException($"{structName}.{path} in kernel BTF", null, $"member '{part}' not found");
            if (bitOffset % 8 != 0) throw new BadInputFormatException($"{structName}.{path} is a bit field.");
            total += bitOffset / 8;
            id = Resolve(memberType);
        }
        return total;
    }

    /// <summary>Skips typedef/const/volatile/restrict/type_tag to the underlying type id.</summary>
    private int Resolve(int id)
    {
        for (int guard = 0; guard < 64 && id > 0 && id < _typeOffsets.Count; guard++)
        {
            int k = Kind(id);
            if (k is KindTypedef or KindConst or KindVolatile or KindRestrict or KindTypeTag) id = (int)SizeOrType(id);
            else return id;
        }
        return id;
    }

    // Anonymous structs/unions nest a few levels in real kernels; deeper is a loop of types (found by fuzzing).
    private const int MaxAnonymousDepth = 32;

    private bool TryFindMember(int id, string name, out uint bitOffset, out int type, int depth = 0)
    {
        bitOffset = 0; type = 0;
        if (depth > MaxAnonymousDepth) throw new BadInputFormatException($"BTF anonymous members nest deeper than {MaxAnonymousDepth} levels at type {id}: a loop.");
        if (id <= 0 || id >= _typeOffsets.Count || Kind(id) is not (KindStruct or KindUnion)) return false;
        int p = _typeOffsets[id] + 12;
        bool kflag = KindFlag(id);
        for (int i = 0; i < Vlen(id); i++, p += 12)
        {
            // struct btf_member { name_off; type; offset (bit offset, or bitfield_size << 24 | bit offset with kind_flag) }
            uint nameOff = U32(p), mtype = U32(p + 4), off = U32(p + 8);
            if (kflag) off &= 0xffffff;
            if (mtype >= _typeOffsets.Count) throw new BadInputFormatException($"BTF member type {mtype} out of range.");
            string n = Str(nameOff);
            if (n == name) { bitOffset = off; type = (int)mtype; return true; }
            if (n.Length == 0 && TryFindMember(Resolve((int)mtype), name, out uint inner, out type, depth + 1))
            {
                bitOffset = off + inner;
                return true;
            }
        }
        return false;
    }
}
