using System.Buffers.Binary;

namespace PSLinuxTrace.Engine.Tests.Fuzz;

/// <summary>
/// Deterministic mutations of corpus inputs, AFL's havoc stages in miniature: bit flips, bytes and
/// words set to boundary values, truncation, chunks duplicated, removed or copied over other bytes
/// (a length field lands on another field), and splices of two inputs. Mutant i depends only on
/// the seed and i, so workers can make them in any order and a failure names its input.
/// </summary>
public sealed class Mutator(IReadOnlyList<byte[]> corpus, int seed, int maxLength = 64 << 10)
{
    private static readonly byte[] Interesting8 = [0, 0xff, 0x7f, 0x80, 1, 0x10, 0x40];
    private static readonly ulong[] Interesting = [0, 1, 0xff, 0x7f, 0x80, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_ffff_ffff_ffff, 0x7fff_ffff_ffff_ffff, 0x1000];
    /// <summary>The <paramref name="index"/>-th mutant: a corpus input (in turn) with 1 to 4 mutations.</summary>
    public byte[] Mutant(int index)
    {
        var random = new Random(unchecked(seed * 1_000_003 + index));
        byte[] input = (byte[])corpus[index % corpus.Count].Clone();
        int rounds = 1 + random.Next(4);
        for (int i = 0; i < rounds && input.Length > 0; i++) input = Mutate(input, random);
        return input.Length > maxLength ? input[..maxLength] : input;
    }

    private byte[] Mutate(byte[] b, Random random)
    {
        int at = random.Next(b.Length);
        switch (random.Next(8))
        {
            case 0:
                b[at] ^= (byte)(1 << random.Next(8));
                return b;
            case 1:
                b[at] = Interesting8[random.Next(Interesting8.Length)];
                return b;
            case 2:
            {
                // A 2-, 4- or 8-byte field (aligned, as ELF and DWARF lay them out) set to a boundary value.
                int width = 2 << random.Next(3);
                at &= ~(width - 1);
                if (at + width > b.Length) return b;
                ulong v = Interesting[random.Next(Interesting.Length)];
                if (width == 2) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), (ushort)v);
                else if (width == 4) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), (uint)v);
                else BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v);
                return b;
            }
            case 3:
                return b[..random.Next(b.Length)];
            case 4:
            {
                // A chunk duplicated in place: entries and records repeated, counts no longer matching.
                int n = Math.Min(1 + random.Next(64), b.Length - at);
                return [.. b[..(at + n)], .. b[at..(at + n)], .. b[(at + n)..]];
            }
            case 5:
            {
                int n = Math.Min(1 + random.Next(64), b.Length - at);
                return [.. b[..at], .. b[(at + n)..]];
            }
            case 6:
            {
                // A field copied over another: a length or offset lands where a different one was.
                int width = 4 << random.Next(2), from = random.Next(b.Length);
                if (from + width > b.Length || at + width > b.Length) return b;
                b.AsSpan(from, width).CopyTo(b.AsSpan(at));
                return b;
            }
            default:
            {
                byte[] other = corpus[random.Next(corpus.Count)];
                int tail = other.Length == 0 ? 0 : random.Next(other.Length);
                return [.. b[..at], .. other[tail..]];
            }
        }
    }
}
