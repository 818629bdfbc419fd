using System.Globalization;

namespace PSLinuxTrace.Engine.Procfs;

/// <summary>What a mapping holds, from its pathname column.</summary>
public enum MappingKind
{
    /// <summary>A file (the pathname starts with '/').</summary>
    File,
    /// <summary>No pathname: anonymous memory (including .bss past a file's end).</summary>
    Anonymous,
    Heap,
    Stack,
    Vdso,
    Vvar,
    Vsyscall,
    /// <summary>Another bracketed pseudo-path ([anon:name], [stack:TID], [uprobes], ...) or a non-path name (memfd: ..., SYSV...).</summary>
    Other,
}

/// <summary>One line of /proc/PID/maps.</summary>
public sealed record MemoryMapping(
    ulong Start,
    ulong End,
    string Permissions,
    ulong Offset,
    uint DeviceMajor,
    uint DeviceMinor,
    ulong Inode,
    string? Path,
    bool IsDeleted,
    MappingKind Kind)
{
    public ulong Size => End - Start;
    public bool IsReadable => Permissions.Length > 0 && Permissions[0] == 'r';
    public bool IsWritable => Permissions.Length > 1 && Permissions[1] == 'w';
    public bool IsExecutable => Permissions.Length > 2 && Permissions[2] == 'x';
    public bool IsPrivate => Permissions.Length > 3 && Permissions[3] == 'p';

    /// <summary>The /proc/PID/map_files entry name for this mapping ("start-end", lowercase hex, no 0x).</summary>
    public string MapFilesName => $"{Start:x}-{End:x}";

    /// <summary>The device as the kernel's dev_t (major, minor) pair key.</summary>
    public ulong Device => ((ulong)DeviceMajor << 32) | DeviceMinor;

    public bool Contains(ulong address) => address >= Start && address < End;

    private const string DeletedSuffix = " (deleted)";

    /// <summary>Parses a whole maps file. Malformed lines raise BadInputFormatException.</summary>
    public static List<MemoryMapping> ParseAll(string text)
    {
        var list = new List<MemoryMapping>(64);
        foreach (var line in text.AsSpan().EnumerateLines())
            if (!line.IsEmpty) list.Add(Parse(line));
        return list;
    }

    /// <summary>
    /// Parses "start-end perms offset major:minor inode [pathname]". The pathname is everything after
    /// the inode and its padding, so names with spaces survive; " (deleted)" is split off; "\012" (an
    /// escaped newline, as seq_path writes it) is unescaped.
    /// </summary>
    public static MemoryMapping Parse(ReadOnlySpan<char> line)
    {
        var rest = line;
        var range = Field(ref rest, line);
        var perms = Field(ref rest, line);
        var offset = Field(ref rest, line);
        var dev = Field(ref rest, line);
        var inode = Field(ref rest, line);
        int dash = range.IndexOf('-');
        int colon = dev.IndexOf(':');
        if (dash <= 0 || colon <= 0 || perms.Length != 4)
            throw new BadInputFormatException($"Malformed /proc/PID/maps line: '{line.ToString()}'.");
        ulong start = Hex(range[..dash], line), end = Hex(range[(dash + 1)..], line);
        string? path = null;
        bool deleted = false;
        MappingKind kind = MappingKind.Anonymous;
        var p = rest.TrimStart(' ');
        if (!p.IsEmpty)
        {
            string s = p.ToString();
            if (s.Contains("\\012", StringComparison.Ordinal)) s = s.Replace("\\012", "\n", StringComparison.Ordinal);
            if (s.StartsWith('/'))
            {
                kind = MappingKind.File;
                if (s.EndsWith(DeletedSuffix, StringComparison.Ordinal))
                {
                    deleted = true;
                    s = s[..^DeletedSuffix.Length];
                }
            }
            else
            {
                kind = s switch
                {
                    "[heap]" => MappingKind.Heap,
                    "[stack]" => MappingKind.Stack,
                    "[vdso]" => MappingKind.Vdso,
                    "[vvar]" or "[vvar_vclock]" => MappingKind.Vvar,
                    "[vsyscall]" => MappingKind.Vsyscall,
                    _ => MappingKind.Other,
                };
                if (s.EndsWith(DeletedSuffix, StringComparison.Ordinal))
                {
                    deleted = true; // memfd:name (deleted), /SYSV00000000 (deleted) ...
                    s = s[..^DeletedSuffix.Length];
                }
            }
            path = s;
        }
        return new MemoryMapping(start, end, string.Intern(perms.ToString()), Hex(offset, line),
            (uint)Hex(dev[..colon], line), (uint)Hex(dev[(colon + 1)..], line),
            ulong.Parse(inode, NumberStyles.None, CultureInfo.InvariantCulture), path, deleted, kind);
    }

    private static ReadOnlySpan<char> Field(ref ReadOnlySpan<char> rest, ReadOnlySpan<char> line)
    {
        rest = rest.TrimStart(' ');
        int sp = rest.IndexOf(' ');
        if (sp < 0)
        {
            // The inode is the last field when there is no pathname.
            var all = rest;
            rest = ReadOnlySpan<char>.Empty;
            if (all.IsEmpty) throw new BadInputFormatException($"Malformed /proc/PID/maps line: '{line.ToString()}'.");
            return all;
        }
        var f = rest[..sp];
        rest = rest[(sp + 1)..];
        return f;
    }

    private static ulong Hex(ReadOnlySpan<char> s, ReadOnlySpan<char> line) =>
        ulong.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
            ? v
            : throw new BadInputFormatException($"Malformed /proc/PID/maps line: '{line.ToString()}'.");

    public override string ToString() => $"{Start:x}-{End:x} {Permissions} {Offset:x8} {DeviceMajor:x2}:{DeviceMinor:x2} {Inode} {Path}{(IsDeleted ? DeletedSuffix : "")}";
}
