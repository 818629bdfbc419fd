using System.Buffers.Binary;
using PSLinuxTrace.Engine.Dwarf;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// Several DWARF sections in one fuzz input: records of [kind: u8][length: u16 LE][bytes], the kind
/// an index into <see cref="DwarfSectionKind"/>. A cut-short record ends the list; a kind seen twice
/// keeps the last. The format is ours (not DWARF): it only lets one file carry what a unit refers to.
/// </summary>
public static class SectionBundle
{
    private static readonly int KindCount = Enum.GetValues<DwarfSectionKind>().Length;

    public static Dictionary<string, byte[]> Decode(ReadOnlySpan<byte> input)
    {
        var sections = new Dictionary<string, byte[]>();
        int pos = 0;
        while (pos + 3 <= input.Length)
        {
            int kind = input[pos] % KindCount, length = BinaryPrimitives.ReadUInt16LittleEndian(input[(pos + 1)..]);
            pos += 3;
            length = Math.Min(length, input.Length - pos);
            sections[DwarfSections.SectionName((DwarfSectionKind)kind)] = input.Slice(pos, length).ToArray();
            pos += length;
        }
        return sections;
    }

    public static byte[] Encode(IEnumerable<(DwarfSectionKind Kind, byte[] Bytes)> sections)
    {
        var output = new List<byte>();
        foreach (var (kind, bytes) in sections)
        {
            if (bytes.Length > ushort.MaxValue) throw new ArgumentException($"{kind}: {bytes.Length} bytes do not fit a bundle record");
            output.Add((byte)kind);
            output.Add((byte)bytes.Length);
            output.Add((byte)(bytes.Length >> 8));
            output.AddRange(bytes);
        }
        return output.ToArray();
    }
}
