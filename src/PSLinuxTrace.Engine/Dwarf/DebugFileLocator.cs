using System.Buffers.Binary;
using System.Text;
using PSLinuxTrace.Engine.Elf;

namespace PSLinuxTrace.Engine.Dwarf;

/// <summary>
/// Finds a module's separate debug file the way gdb does ("Separate Debug Files" in the gdb
/// manual): by build-id as DEBUGDIR/.build-id/xx/yyyy.debug, then by .gnu_debuglink as the
/// module's own directory, its .debug/ subdirectory, and DEBUGDIR + the module's directory,
/// each candidate checked (the same build-id, or else the CRC-32 the debug link records). Each
/// place is looked for under <c>sysRoot</c> first when one is given, then on this machine.
/// Returns paths: callers open (and cache) the files themselves.
/// </summary>
public static class DebugFileLocator
{
    /// <summary>Where distributions install debug files (Debian's -dbg and -dbgsym packages, Fedora's debuginfo).</summary>
    public const string DefaultDebugDirectory = "/usr/lib/debug";

    /// <summary>
    /// The separate debug file of <paramref name="module"/> (opened from <paramref name="modulePath"/>,
    /// the path the process mapped), or null when none is found.
    /// </summary>
    public static string? Find(ElfFile module, string modulePath, string? sysRoot = null, IReadOnlyList<string>? debugDirectories = null)
    {
        var dirs = debugDirectories ?? [DefaultDebugDirectory];
        string? buildId = SafeBuildId(module);
        if (buildId is not null && FindByBuildId(buildId, sysRoot, dirs) is { } byId) return byId;
        return FindByDebugLink(module, modulePath, sysRoot, dirs);
    }

    /// <summary>DEBUGDIR/.build-id/xx/yyyy.debug for a build-id given as lowercase hex, checked to carry that build-id.</summary>
    public static string? FindByBuildId(string buildIdHex, string? sysRoot = null, IReadOnlyList<string>? debugDirectories = null)
    {
        if (buildIdHex.Length < 3 || !buildIdHex.All(Uri.IsHexDigit)) return null;
        string relative = Path.Join(".build-id", buildIdHex[..2], buildIdHex[2..] + ".debug");
        foreach (string dir in debugDirectories ?? [DefaultDebugDirectory])
            foreach (string candidate in Rooted(Path.Join(dir, relative), sysRoot))
                if (Matches(candidate, buildIdHex, null)) return candidate;
        return null;
    }

    /// <summary>The file .gnu_debuglink names, in gdb's three places, checked by build-id or CRC-32.</summary>
    public static string? FindByDebugLink(ElfFile module, string modulePath, string? sysRoot = null, IReadOnlyList<string>? debugDirectories = null)
    {
        if (ReadDebugLink(module) is not { } link) return null;
        string? buildId = SafeBuildId(module);
        foreach (string dir in ModuleDirectories(modulePath))
        {
            var places = new List<string> { Path.Join(dir, link.FileName), Path.Join(dir, ".debug", link.FileName) };
            foreach (string debugDir in debugDirectories ?? [DefaultDebugDirectory])
                places.Add(Path.Join(debugDir, dir, link.FileName));
            foreach (string place in places)
                foreach (string candidate in Rooted(place, sysRoot))
                    if (!SamePath(candidate, modulePath) && Matches(candidate, buildId, link.Crc)) return candidate;
        }
        return null;
    }

    /// <summary>The .gnu_debuglink section: a file name, NUL, padding to 4, a CRC-32 of the debug file.</summary>
    public static (string FileName, uint Crc)? ReadDebugLink(ElfFile module)
    {
        try
        {
            if (module.FindSection(".gnu_debuglink") is not { } s || s.Type == ElfSection.SHT_NOBITS) return null;
            var bytes = module.GetSectionBytes(s);
            int nul = bytes.IndexOf((byte)0);
            if (nul <= 0) return null;
            int crcAt = (nul + 4) & ~3;
            if (crcAt + 4 > bytes.Length) return null;
            string name = Encoding.UTF8.GetString(bytes[..nul]);
            // A name with a directory in it would let a damaged module point anywhere.
            if (name.Contains('/') || name is "." or "..") return null;
            return (name, BinaryPrimitives.ReadUInt32LittleEndian(bytes[crcAt..]));
        }
        catch (BadInputFormatException)
        {
            return null;
        }
    }

    /// <summary>True when <paramref name="elf"/> carries DWARF (.debug_info, compressed or not), so it can be handed to <see cref="DwarfSourceInfo.Load(ElfFile)"/>.</summary>
    public static bool HasDwarf(ElfFile elf)
    {
        try
        {
            var s = elf.FindSection(".debug_info") ?? elf.FindSection(".zdebug_info");
            return s is not null && s.Type != ElfSection.SHT_NOBITS && s.Size > 0;
        }
        catch (BadInputFormatException)
        {
            return false;
        }
    }

    private static IEnumerable<string> ModuleDirectories(string modulePath)
    {
        string full = Path.GetFullPath(modulePath);
        string? dir = Path.GetDirectoryName(full);
        if (dir is null) yield break;
        yield return dir;
        // Through a symlink (/lib -> usr/lib on merged-/usr systems), gdb looks where the file really is too.
        string? real = Path.GetDirectoryName(RealPath(full));
        if (real is not null && real != dir) yield return real;
    }

    /// <summary>realpath(3) of an absolute path: every symlink component resolved (at most 40 links, as the kernel's limit).</summary>
    private static string RealPath(string full)
    {
        string result = "/";
        int links = 0;
        foreach (string part in full.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Join(result, part);
            try
            {
                var info = new FileInfo(next);
                if (info.LinkTarget is not null && ++links <= 40 && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                    next = target.FullName;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
            result = next;
        }
        return result;
    }

    private static IEnumerable<string> Rooted(string path, string? sysRoot)
    {
        if (sysRoot is not null) yield return Path.Join(sysRoot, path);
        yield return path;
    }

    private static bool SamePath(string a, string b)
    {
        try { return Path.GetFullPath(a) == Path.GetFullPath(b); }
        catch (Exception ex) when (ex is ArgumentException or IOException) { return false; }
    }

    /// <summary>Whether <paramref name="path"/> is readable ELF with the expected build-id, or (without build-ids) the expected CRC.</summary>
    private static bool Matches(string path, string? buildId, uint? crc)
    {
        try
        {
            if (!File.Exists(path)) return false;
            using var elf = ElfFile.Open(path);
            string? id = SafeBuildId(elf);
            if (buildId is not null && id is not null) return id == buildId;
            if (crc is null) return buildId is null;
            return FileCrc32(path) == crc;
        }
        catch (Exception ex) when (ex is BadInputFormatException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string? SafeBuildId(ElfFile elf)
    {
        try { return elf.BuildIdHex; }
        catch (BadInputFormatException) { return null; }
    }

    /// <summary>The CRC-32 (ISO-HDLC, as zlib's crc32 and bfd's gnu_debuglink_crc32) of a whole file.</summary>
    public static uint FileCrc32(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
        var buffer = new byte[1 << 16];
        uint crc = 0;
        int n;
        while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) crc = Crc32(buffer.AsSpan(0, n), crc);
        return crc;
    }

    private static readonly uint[] CrcTable = MakeCrcTable();

    private static uint[] MakeCrcTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>Continues a CRC-32 over <paramref name="data"/> (start with 0).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data, uint crc = 0)
    {
        crc = ~crc;
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
}
