using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Memory;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using PSLinuxTrace.Engine.Unwind;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Elf;

/// <summary>
/// Damaged images in memory: a real program laid out as the loader lays it out (each PT_LOAD's file
/// bytes at its address), then bytes of its headers, dynamic section, notes, dynamic tables and
/// .eh_frame damaged, or its memory cut short. Every part of <see cref="ElfImage"/> and the CFI read
/// from it must work or throw BadInputFormatException, within a time bound.
/// </summary>
public class CorruptElfImageTests
{
    private const ulong Base = 0x7f12_3400_0000;

    /// <summary>An image's bytes at <see cref="Base"/>, readable up to <see cref="ReadableLength"/>.</summary>
    private sealed class LoadedImage(byte[] bytes) : IAddressSpace
    {
        public byte[] Bytes { get; } = bytes;
        public int ReadableLength { get; set; } = bytes.Length;

        public int Read(ulong address, Span<byte> buffer)
        {
            if (address < Base || address - Base >= (ulong)ReadableLength) return 0;
            int at = (int)(address - Base), n = Math.Min(buffer.Length, ReadableLength - at);
            Bytes.AsSpan(at, n).CopyTo(buffer);
            return n;
        }
    }

    private static LoadedImage Load(string path)
    {
        using var elf = ElfFile.Open(path);
        var loads = elf.ProgramHeaders.Where(p => p.Type == ElfProgramHeader.PT_LOAD).ToList();
        var bytes = new byte[loads.Max(p => p.VirtualAddress + p.MemorySize)];
        foreach (var p in loads) elf.GetBytes(p.Offset, p.FileSize).CopyTo(bytes.AsSpan((int)p.VirtualAddress));
        return new LoadedImage(bytes);
    }

    /// <summary>Touches every part of the image; returns normally or throws what the reader throws.</summary>
    private static void Exercise(IAddressSpace memory)
    {
        var image = ElfImage.FromAddressSpace(memory, Base, "damaged");
        _ = image.BuildIdHex;
        _ = image.DynamicEntries.Count;
        if (image.DynamicSymbols is { } table)
        {
            foreach (var s in table.All) _ = s.Name;
            foreach (string name in new[] { "main", "printf", "pslt_function", "__cxa_finalize" }) table.Lookup(name);
            table.FindContaining(0x1150);
        }
        if (CallFrameInfo.FromImage(image) is { } cfi)
            for (ulong pc = 0x1000; pc < 0x1400; pc += 0x40) cfi.FindRow(pc);
    }

    private static bool TypedOrFine(IAddressSpace memory, string what)
    {
        try
        {
            Exercise(memory);
            return true;
        }
        catch (BadInputFormatException ex)
        {
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
            return false;
        }
        catch (Exception ex)
        {
            Assert.Fail($"{what}: {ex.GetType().Name}: {ex.Message}\n{ex.StackTrace}");
            return false;
        }
    }

    [Fact]
    public void TheIntactImageReadsWhole()
    {
        var memory = Load(Fixtures.Build("symbols"));
        var image = ElfImage.FromAddressSpace(memory, Base, "intact");
        using var file = ElfFile.Open(Fixtures.Build("symbols"));
        Assert.Equal(file.BuildIdHex, image.BuildIdHex);
        Assert.Equal(Base, image.LoadBias);
        Assert.Equal(file.DynamicSymbols!.Count, image.DynamicSymbols!.Count);
        Assert.Equal(file.DynamicSymbols.All.Select(s => (s.Name, s.Value)), image.DynamicSymbols.All.Select(s => (s.Name, s.Value)));
        Assert.Equal(CallFrameInfo.Load(file)!.Count, CallFrameInfo.FromImage(image)!.Count);
    }

    [Fact]
    public void DamagedAndCutShortImagesGiveOnlyTypedErrors()
    {
        var memory = Load(Fixtures.Build("symbols"));
        var intact = ElfImage.FromAddressSpace(memory, Base, "intact");
        ulong Tag(long tag) => intact.DynamicEntries.First(e => e.Tag == tag).Value; // as linked: nothing relocated them
        var regions = new List<(int Offset, int Length)> { (0, 64), ((int)intact.Header.ProgramHeaderOffset, (int)intact.Header.ProgramHeaderCount * 56) };
        foreach (var p in intact.ProgramHeaders.Where(p => p.Type is ElfProgramHeader.PT_DYNAMIC or ElfProgramHeader.PT_NOTE or ElfProgramHeader.PT_GNU_EH_FRAME))
            regions.Add(((int)p.VirtualAddress, (int)p.MemorySize));
        foreach (long tag in new[] { ElfDynamicEntry.DT_SYMTAB, ElfDynamicEntry.DT_STRTAB, ElfDynamicEntry.DT_GNU_HASH })
            regions.Add(((int)Tag(tag), 256));
        int fine = 0, typed = 0;
        var task = Task.Run(() =>
        {
            var rng = new Random(14);
            for (int i = 0; i < 5000; i++)
            {
                var changed = new List<(int, byte)>();
                for (int k = 1 + rng.Next(6); k > 0; k--)
                {
                    var (off, len) = regions[rng.Next(regions.Count)];
                    int at = off + rng.Next(len);
                    changed.Add((at, memory.Bytes[at]));
                    memory.Bytes[at] = rng.Next(4) switch { 0 => 0xff, 1 => 0, 2 => (byte)(memory.Bytes[at] ^ (1 << rng.Next(8))), _ => (byte)rng.Next(256) };
                }
                if (TypedOrFine(memory, $"mutant {i}")) fine++; else typed++;
                for (int k = changed.Count - 1; k >= 0; k--) memory.Bytes[changed[k].Item1] = changed[k].Item2;
            }
            // Memory that ends early (a core that left pages out): null tables or typed errors, never garbage.
            for (int cut = 0; cut < memory.Bytes.Length; cut += 61)
            {
                memory.ReadableLength = cut;
                if (TypedOrFine(memory, $"cut at {cut}")) fine++; else typed++;
            }
        });
        Assert.True(task.Wait(TimeSpan.FromMinutes(2)), "reading damaged images did not finish: a loop or a huge allocation?");
        task.GetAwaiter().GetResult();
        Assert.True(typed > 100 && fine > 100, $"{typed} rejected, {fine} read: the damage should reach both outcomes");
    }
}
