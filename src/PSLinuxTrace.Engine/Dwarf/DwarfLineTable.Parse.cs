namespace PSLinuxTrace.Engine.Dwarf;

internal sealed partial class DwarfLineTable
{
    /// <summary>
    /// Parses the line-number program at <paramref name="offset"/> of .debug_line for
    /// <paramref name="unit"/> (whose comp_dir, address size and string bases it uses).
    /// </summary>
    public static DwarfLineTable Parse(DwarfSections s, ulong offset, DwarfUnit unit)
    {
        ulong size = s.SizeOf(DwarfSectionKind.Line);
        var r = new DwarfReader(s.Prefix(DwarfSectionKind.Line, offset + 12), ".debug_line", offset);
        ulong length = r.InitialLength(out int offsetSize);
        if (length > size - r.Position) throw r.Bad($"the line table at 0x{offset:x} claims 0x{length:x} bytes, past the end of the section");
        ulong end = r.Position + length;
        var section = s.Prefix(DwarfSectionKind.Line, end);
        // Everything below reads within the table's own bytes.
        r = new DwarfReader(section[..(int)end], ".debug_line", r.Position);
        int version = r.U16();
        if (version is < 2 or > 5) throw r.Bad($"the line table at 0x{offset:x} has version {version} (2 to 5 are known)");
        int addressSize = unit.Header.AddressSize;
        if (version >= 5)
        {
            addressSize = r.U8();
            r.U8(); // segment_selector_size
            if (addressSize is not (4 or 8)) throw r.Bad($"the line table at 0x{offset:x} has address size {addressSize}");
        }
        ulong headerLength = r.Offset(offsetSize);
        if (headerLength > r.Remaining) throw r.Bad($"the line table header at 0x{offset:x} runs past the table");
        ulong programStart = r.Position + headerLength;
        var p = new ProgramParameters
        {
            MinInstructionLength = r.U8(),
            MaxOpsPerInstruction = version >= 4 ? r.U8() : (byte)1,
            DefaultIsStmt = r.U8() != 0,
            LineBase = (sbyte)r.U8(),
            LineRange = r.U8(),
            OpcodeBase = r.U8(),
            AddressSize = addressSize,
        };
        if (p.LineRange == 0) throw r.Bad($"the line table at 0x{offset:x} has line_range 0");
        if (p.MaxOpsPerInstruction == 0) p.MaxOpsPerInstruction = 1;
        p.StandardOpcodeLengths = p.OpcodeBase > 0 ? r.Bytes((ulong)p.OpcodeBase - 1).ToArray() : [];

        var directories = new List<string?>();
        var files = new List<FileEntry>();
        if (version >= 5)
        {
            var header = new DwarfUnitHeader(0, 0, 5, 0, offsetSize, addressSize, 0, 0);
            ReadEntries(ref r, s, unit, header, section, directories, null);
            ReadEntries(ref r, s, unit, header, section, null, files);
        }
        else
        {
            while (true)
            {
                string dir = r.CString();
                if (dir.Length == 0) break;
                directories.Add(dir);
            }
            while (true)
            {
                string name = r.CString();
                if (name.Length == 0) break;
                ulong dir = r.Uleb();
                r.Uleb(); r.Uleb(); // mtime, length
                files.Add(new FileEntry(name, dir));
            }
        }
        r.Position = programStart;
        var rows = new List<DwarfLineRow>();
        var sequences = new List<Sequence>();
        RunProgram(ref r, p, files, rows, sequences);
        return new DwarfLineTable(offset, version, unit.CompDir, directories.ToArray(), files.ToArray(), rows, sequences);
    }

    /// <summary>A DWARF 5 directory or file name table: an entry format, a count, the entries (§6.2.4.1).</summary>
    private static void ReadEntries(ref DwarfReader r, DwarfSections s, DwarfUnit unit, in DwarfUnitHeader header, ReadOnlySpan<byte> line,
        List<string?>? directories, List<FileEntry>? files)
    {
        int formatCount = r.U8();
        var format = new DwarfAttributeSpec[formatCount];
        for (int i = 0; i < formatCount; i++)
        {
            ulong type = r.Uleb(), form = r.Uleb();
            format[i] = new DwarfAttributeSpec(type > 0xffff ? (ushort)0xffff : (ushort)type, form > 0xffff ? (ushort)0xffff : (ushort)form, 0);
        }
        ulong count = r.Uleb();
        // An entry takes at least one byte unless every form of its format is empty (flag_present):
        // beyond that slack, a count is damage, and it must not drive the loop or the lists.
        if (count > r.Remaining + 65536) throw r.Bad($"{count} directory or file entries cannot fit the line table");
        for (ulong i = 0; i < count; i++)
        {
            string? path = null;
            ulong dir = 0;
            foreach (var spec in format)
            {
                var v = DwarfAttributeValue.Read(ref r, spec, header);
                if (spec.Name == DwLine.Path) path = LineString(v, s, unit, line);
                else if (spec.Name == DwLine.DirectoryIndex && v.IsConstant) dir = v.Value;
            }
            directories?.Add(path);
            files?.Add(new FileEntry(path, dir));
        }
    }

    private static string? LineString(in DwarfAttributeValue v, DwarfSections s, DwarfUnit unit, ReadOnlySpan<byte> line) => v.Kind switch
    {
        DwarfValueKind.InlineString => new DwarfReader(line, ".debug_line", v.Value).CString(),
        DwarfValueKind.StrOffset => DwarfReader.StringAt(s[DwarfSectionKind.Str], v.Value, ".debug_str"),
        DwarfValueKind.LineStrOffset => DwarfReader.StringAt(s[DwarfSectionKind.LineStr], v.Value, ".debug_line_str"),
        DwarfValueKind.StrIndex => DwarfReader.StringAt(s[DwarfSectionKind.Str], unit.StrOffset(v.Value), ".debug_str"),
        _ => null,
    };

    private sealed class ProgramParameters
    {
        public byte MinInstructionLength, MaxOpsPerInstruction, LineRange, OpcodeBase;
        public sbyte LineBase;
        public bool DefaultIsStmt;
        public int AddressSize;
        public byte[] StandardOpcodeLengths = [];
    }
}
