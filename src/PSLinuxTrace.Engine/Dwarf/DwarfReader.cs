using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.Text;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// A bounds-checked little-endian cursor over one DWARF section. Every read past the end, every
/// over-long LEB128 and every offset that does not fit the section throws
/// <see cref="BadInputFormatException"/>, so damaged debug info fails one lookup, never the process.
/// </summary>
internal ref struct DwarfReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly string _section;
    private int _position;

    public DwarfReader(ReadOnlySpan<byte> data, string section, ulong position = 0)
    {
        _data = data;
        _section = section;
        _position = 0;
        Position = position;
    }

    /// <summary>Offset in the section; setting it past the end throws.</summary>
    public ulong Position
    {
        readonly get => (ulong)_position;
        set
        {
            if (value > (ulong)_data.Length) throw Bad($"offset 0x{value:x} lies outside the section (0x{_data.Length:x} bytes)");
            _position = (int)value;
        }
    }

    public readonly ulong Length => (ulong)_data.Length;
    public readonly ulong Remaining => (ulong)(_data.Length - _position);
    public readonly bool AtEnd => _position >= _data.Length;

    public readonly BadInputFormatException Bad(string what) => new($"DWARF {_section}: {what}.");

    private ReadOnlySpan<byte> Take(ulong n)
    {
        if (n > (ulong)(_data.Length - _position))
            throw Bad($"ends early (need {n} bytes at offset 0x{_position:x}, 0x{_data.Length:x} in the section)");
        var s = _data.Slice(_position, (int)n);
        _position += (int)n;
        return s;
    }

    public void Skip(ulong n)
    {
        if (n > (ulong)(_data.Length - _position))
            throw Bad($"ends early (need {n} bytes at offset 0x{_position:x}, 0x{_data.Length:x} in the section)");
        _position += (int)n;
    }

    public byte U8()
    {
        // The hottest read of every parser here (opcodes, LEB128 bytes, abbreviation codes): no slice.
        if ((uint)_position >= (uint)_data.Length) throw Bad($"ends early (need 1 byte at offset 0x{_position:x})");
        return _data[_position++];
    }
    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint U24()
    {
        var b = Take(3);
        return b[0] | (uint)b[1] << 8 | (uint)b[2] << 16;
    }
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
    public ReadOnlySpan<byte> Bytes(ulong n) => Take(n);

    /// <summary>An unsigned value of 1, 2, 4 or 8 bytes (address_size, offset_size).</summary>
    public ulong UInt(int size) => size switch
    {
        1 => U8(),
        2 => U16(),
        4 => U32(),
        8 => U64(),
        _ => throw Bad($"unsupported field size {size}"),
    };

    /// <summary>A 4- or 8-byte section offset (32-bit or 64-bit DWARF).</summary>
    public ulong Offset(int offsetSize) => offsetSize == 8 ? U64() : U32();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ulong Uleb()
    {
        if ((uint)_position < (uint)_data.Length && _data[_position] < 0x80) return _data[_position++];
        ulong result = 0;
        int shift = 0;
        while (true)
        {
            byte b = U8();
            if (shift < 64) result |= (ulong)(b & 0x7f) << shift;
            shift += 7;
            if ((b & 0x80) == 0) return result;
            if (shift > 70) throw Bad("LEB128 number is too long");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
            if (shift > 70) throw Bad("LEB128 number is too long");
        } while ((b & 0x80) != 0);
        if (shift < 64 && (b & 0x40) != 0) result |= -1L << shift;
        return result;
    }

    /// <summary>A ULEB128 that must fit an int (counts, indices); larger values are damage.</summary>
    public int UlebInt(string what)
    {
        ulong v = Uleb();
        if (v > int.MaxValue) throw Bad($"{what} {v} is too large");
        return (int)v;
    }

    /// <summary>A NUL-terminated string in place (DW_FORM_string, v2-4 line table names).</summary>
    public string CString()
    {
        var rest = _data[_position..];
        int nul = rest.IndexOf((byte)0);
        if (nul < 0) throw Bad($"string at offset 0x{_position:x} is not NUL-terminated");
        _position += nul + 1;
        return Encoding.UTF8.GetString(rest[..nul]);
    }

    /// <summary>
    /// A unit's initial length (DWARF 5 §7.4): 0xffffffff announces 64-bit DWARF and an 8-byte
    /// length. Returns the length; <paramref name="offsetSize"/> becomes 4 or 8.
    /// </summary>
    public ulong InitialLength(out int offsetSize)
    {
        uint l = U32();
        if (l == 0xffffffff)
        {
            offsetSize = 8;
            return U64();
        }
        if (l >= 0xfffffff0) throw Bad($"reserved initial length 0x{l:x}");
        offsetSize = 4;
        return l;
    }

    /// <summary>The NUL-terminated string at <paramref name="offset"/> of a string section (.debug_str, .debug_line_str).</summary>
    public static string StringAt(ReadOnlySpan<byte> table, ulong offset, string section)
    {
        if (offset >= (ulong)table.Length) throw new BadInputFormatException($"DWARF {section}: string offset 0x{offset:x} lies outside the section (0x{table.Length:x} bytes).");
        var rest = table[(int)offset..];
        int nul = rest.IndexOf((byte)0);
        if (nul < 0) throw new BadInputFormatException($"DWARF {section}: string at offset 0x{offset:x} is not NUL-terminated.");
        return Encoding.UTF8.GetString(rest[..nul]);
    }
}
