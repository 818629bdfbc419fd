using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Managed;

/// <summary>
/// The messages between the user's process and the ClrMD worker (<see cref="ClrMdWorkerServer"/>), one byte of
/// kind then BinaryWriter fields. The worker asks for memory ('R') while it answers any request, so the client
/// serves reads until the answer comes.
/// </summary>
internal static class ClrMdWire
{
    public const byte Open = (byte)'o', Opened = (byte)'O', Failed = (byte)'E', Frames = (byte)'F', FramesReply = (byte)'f',
        IsManaged = (byte)'M', IsManagedReply = (byte)'m', Read = (byte)'R', ReadReply = (byte)'r', Quit = (byte)'Q';

    /// <summary>The most the worker asks for in one read (a page: its reader caches pages).</summary>
    public const int MaxRead = 1 << 16;

    public static void WriteNullable(this BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    public static string? ReadNullableString(this BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static void WriteNullable(this BinaryWriter w, ulong? v)
    {
        w.Write(v.HasValue);
        if (v is { } x) w.Write(x);
    }

    private static void WriteNullable(this BinaryWriter w, int? v)
    {
        w.Write(v.HasValue);
        if (v is { } x) w.Write(x);
    }

    private static ulong? ReadNullableU64(this BinaryReader r) => r.ReadBoolean() ? r.ReadUInt64() : null;
    private static int? ReadNullableI32(this BinaryReader r) => r.ReadBoolean() ? r.ReadInt32() : null;

    public static void Write(this BinaryWriter w, X64Registers x)
    {
        foreach (ulong v in (ulong[])[x.Rip, x.Rsp, x.Rbp, x.Rax, x.Rbx, x.Rcx, x.Rdx, x.Rsi, x.Rdi, x.R8, x.R9, x.R10, x.R11,
                     x.R12, x.R13, x.R14, x.R15, x.OrigRax, x.Eflags, x.Cs, x.Ss, x.Ds, x.Es, x.Fs, x.Gs, x.FsBase, x.GsBase])
            w.Write(v);
    }

    public static X64Registers ReadRegisters(this BinaryReader r)
    {
        var v = new ulong[27];
        for (int i = 0; i < v.Length; i++) v[i] = r.ReadUInt64();
        return new X64Registers
        {
            Rip = v[0], Rsp = v[1], Rbp = v[2], Rax = v[3], Rbx = v[4], Rcx = v[5], Rdx = v[6], Rsi = v[7], Rdi = v[8],
            R8 = v[9], R9 = v[10], R10 = v[11], R11 = v[12], R12 = v[13], R13 = v[14], R14 = v[15], R15 = v[16],
            OrigRax = v[17], Eflags = v[18], Cs = v[19], Ss = v[20], Ds = v[21], Es = v[22], Fs = v[23], Gs = v[24],
            FsBase = v[25], GsBase = v[26],
        };
    }

    public static void Write(this BinaryWriter w, ManagedFrame f)
    {
        w.Write((byte)f.Kind);
        w.Write(f.InstructionPointer);
        w.Write(f.StackPointer);
        w.Write(f.Name);
        w.WriteNullable(f.ModulePath);
        w.Write(f.Offset);
        w.WriteNullable(f.ILOffset);
        w.WriteNullable(f.File);
        w.WriteNullable(f.Line);
        w.WriteNullable(f.Column);
        w.WriteNullable(f.Rbp);
    }

    public static ManagedFrame ReadFrame(this BinaryReader r) =>
        new((StackFrameKind)r.ReadByte(), r.ReadUInt64(), r.ReadUInt64(), r.ReadString())
        {
            ModulePath = r.ReadNullableString(), Offset = r.ReadUInt64(), ILOffset = r.ReadNullableI32(),
            File = r.ReadNullableString(), Line = r.ReadNullableI32(), Column = r.ReadNullableI32(), Rbp = r.ReadNullableU64(),
        };
}
