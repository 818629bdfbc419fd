using System.Buffers.Binary;
using System.Text;

namespace PSLinuxTrace.Engine.Bpf;

/// <summary>
/// The smallest BTF that describes a program's functions: one `int f(void)` FUNC per function, in
/// instruction order (Documentation/bpf/btf.rst). The verifier wants func_info (a BTF FUNC for the
/// first instruction of every function) once a program passes a callback to bpf_loop; it checks
/// prototypes only for global functions, and every function here is static. So we build this much
/// instead of loading (and patching, as libbpf does) the full BTF clang writes with -g.
/// </summary>
public static class FunctionBtf
{
    private const int KindInt = 1, KindFuncProto = 13, KindFunc = 12;
    private const uint IntSigned = 1;
    private const uint LinkageStatic = 0;

    /// <summary>The BTF blob and the func_info records (insn_off, type_id) for functions starting at the given instructions.</summary>
    public static (byte[] Btf, byte[] FuncInfo) Build(IReadOnlyList<(int Instruction, string Name)> functions)
    {
        var strings = new MemoryStream();
        strings.WriteByte(0);
        uint Str(string s)
        {
            uint at = (uint)strings.Length;
            byte[] b = Encoding.ASCII.GetBytes(s);
            strings.Write(b);
            strings.WriteByte(0);
            return at;
        }
        var types = new MemoryStream();
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); types.Write(b); }
        // [1] int: struct btf_type { name_off, info, size } + the encoding word
        U32(Str("int")); U32((uint)KindInt << 24); U32(4); U32((IntSigned << 24) | 32);
        // [2] int (void)
        U32(0); U32((uint)KindFuncProto << 24); U32(1);
        byte[] funcInfo = new byte[8 * functions.Count];
        for (int i = 0; i < functions.Count; i++)
        {
            // [3 + i] FUNC name -> [2]; vlen holds the linkage
            U32(Str(functions[i].Name)); U32(((uint)KindFunc << 24) | LinkageStatic); U32(2);
            BinaryPrimitives.WriteUInt32LittleEndian(funcInfo.AsSpan(8 * i), (uint)functions[i].Instruction);
            BinaryPrimitives.WriteUInt32LittleEndian(funcInfo.AsSpan(8 * i + 4), (uint)(3 + i));
        }
        // struct btf_header { u16 magic; u8 version, flags; u32 hdr_len, type_off, type_len, str_off, str_len; }
        byte[] blob = new byte[24 + types.Length + strings.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(blob, 0xEB9F);
        blob[2] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4), 24);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(8), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(12), (uint)types.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(16), (uint)types.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(20), (uint)strings.Length);
        types.ToArray().CopyTo(blob, 24);
        strings.ToArray().CopyTo(blob, 24 + (int)types.Length);
        return (blob, funcInfo);
    }
}
