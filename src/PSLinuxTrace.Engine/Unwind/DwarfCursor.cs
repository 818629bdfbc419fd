using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Unwind;

/// <summary>
/// A bounds-checked reader over DWARF bytes (.eh_frame, expressions). Running off the end throws
/// BadInputFormatException, so a damaged table fails one lookup, not the process.
/// </summary>
internal ref struct DwarfCursor
{
    private readonly ReadOnlySpan<byte> _data;
    public int Position;

    /// <summary>The virtual address of byte 0 (for pc-relative pointers).</summary>
    public readonly ulong BaseAddress;

    public DwarfCursor(ReadOnlySpan<byte> data, ulong baseAddress, int position = 0)
    {
        _data = data;
        BaseAddress = baseAddress;
        Position = position;
    }

    public readonly int Length => _data.Length;
    public readonly bool AtEnd => Position >= _data.Length;
    public readonly ulong CurrentAddress => BaseAddress + (ulong)Position;

    private ReadOnlySpan<byte> Take(int n)
    {
        // A position moved by a length from the data can be negative (an int cast of a huge ULEB128): found by fuzzing.
        if (n < 0 || Position < 0 || Position > _data.Length - n) throw new BadInputFormatException($"DWARF data ends early (need {n} bytes at offset {Position} of {_data.Length}).");
        var s = _data.Slice(Position, n);
        Position += n;
        return s;
    }

    public byte U8() => Take(1)[0];
    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
    public ReadOnlySpan<byte> Bytes(int n) => Take(n);

    public ulong Uleb()
    {
        ulong result = 0;
        int shift = 0;
        while (true)
        {
            byte b = U8();
            if (shift < 64) result |= (ulong)(b & 0x7f) << shift;
            shift += 7;
            if ((b & 0x80) == 0) return result;
            if (shift > 70) throw new BadInputFormatException("DWARF LEB128 number is too long.");
        }
    }

    public long Sleb()
    {
        long result = 0;
        int shift = 0;
        byte b;
        do
        {
            b = U8();
            if (shift < 64) result |= (long)(b & 0x7f) << shift;
            shift += 7;
            if (shift > 70) throw new BadInputFormatException("DWARF LEB128 number is too long.");
        } while ((b & 0x80) != 0);
        if (shift < 64 && (b & 0x40) != 0) result |= -1L << shift;
        return result;
    }

    public string CString()
    {
        int start = Position;
        while (U8() != 0) { }
        return System.Text.Encoding.ASCII.GetString(_data.Slice(start, Position - start - 1));
    }

    // DW_EH_PE_* pointer encodings (LSB Core spec, .eh_frame).
    public const byte PeAbsPtr = 0x00, PeUleb = 0x01, PeUdata2 = 0x02, PeUdata4 = 0x03, PeUdata8 = 0x04,
        PeSleb = 0x09, PeSdata2 = 0x0a, PeSdata4 = 0x0b, PeSdata8 = 0x0c,
        PePcRel = 0x10, PeTextRel = 0x20, PeDataRel = 0x30, PeFuncRel = 0x40, PeAligned = 0x50, PeIndirect = 0x80, PeOmit = 0xff;

    /// <summary>Reads a pointer in encoding <paramref name="enc"/>; <paramref name="dataRel"/> is the base for DW_EH_PE_datarel (.eh_frame_hdr's address).</summary>
    public ulong Encoded(byte enc, ulong dataRel = 0)
    {
        if (enc == PeOmit) return 0;
        ulong fieldAddress = CurrentAddress;
        ulong value = (enc & 0x0f) switch
        {
            PeAbsPtr => U64(),
            PeUleb => Uleb(),
            PeUdata2 => U16(),
            PeUdata4 => U32(),
            PeUdata8 => U64(),
            PeSleb => (ulong)Sleb(),
            PeSdata2 => (ulong)(long)(short)U16(),
            PeSdata4 => (ulong)(long)(int)U32(),
            PeSdata8 => U64(),
            _ => throw new BadInputFormatException($"Unknown DWARF pointer encoding 0x{enc:x2}."),
        };
        switch (enc & 0x70)
        {
            case 0: break;
            case PePcRel: value = unchecked(value + fieldAddress); break;
            case PeDataRel: value = unchecked(value + dataRel); break;
            case PeTextRel or PeFuncRel or PeAligned: throw new BadInputFormatException($"Unsupported DWARF pointer encoding 0x{enc:x2}.");
            default: throw new BadInputFormatException($"Unknown DWARF pointer encoding 0x{enc:x2}.");
        }
        // DW_EH_PE_indirect: the value is the address of the pointer; callers that need it dereference it (personality only).
        return value;
    }
}
