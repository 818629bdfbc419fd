using System.Globalization;

namespace PSLinuxTrace.Engine.Access;

/// <summary>
/// Why opening a file (a core to read, a snapshot to write) was refused: the file's or its directory's
/// mode against this process's uid and the capabilities that bypass it (CAP_DAC_READ_SEARCH for reading,
/// CAP_DAC_OVERRIDE for both; capabilities(7)). .NET's own "Access to the path is denied" names neither.
/// </summary>
public static class FileAccessDiagnosis
{
    private const int CapDacOverride = 1, CapDacReadSearch = 2;

    /// <summary>The exception for an UnauthorizedAccessException from reading (or, <paramref name="write"/>, creating) <paramref name="path"/>.</summary>
    public static TargetPermissionDeniedException Explain(string path, bool write, Exception inner)
    {
        string full = Path.GetFullPath(path);
        // Creating a file needs write and search permission on its directory; reading needs read on the file.
        string checkedPath = write && !File.Exists(full) ? Path.GetDirectoryName(full) ?? "/" : full;
        bool inDirectory = checkedPath != full;
        string what = inDirectory ? $"its directory {checkedPath}" : "it";
        string denied = !write ? "read it" : inDirectory ? "create files there" : "write it";
        string mode = ModeOf(checkedPath);
        string uid = EffectiveUid();
        string missing = write ? "CAP_DAC_OVERRIDE" : "CAP_DAC_READ_SEARCH";
        bool haveBypass = write ? Has(CapDacOverride) : Has(CapDacReadSearch) || Has(CapDacOverride);
        string reason = haveBypass
            ? "the file modes would let this process through, so a security module or a read-only mount probably refused it"
            : $"{what} has mode {mode}, which does not let uid {uid} {denied}, and this process lacks {missing}" +
              $"{(write ? "" : " (or CAP_DAC_OVERRIDE)")}, which lets a process {(write ? "write" : "read")} any file";
        return new TargetPermissionDeniedException($"Permission denied {(write ? "writing" : "reading")} {full}: {reason}.", haveBypass ? null : missing, inner,
            write ? "Choose a -Path you can write." : "Read it as its owner or as root (sudo), or copy it somewhere you can read it.");
    }

    private static string ModeOf(string path)
    {
        try
        {
            if (OperatingSystem.IsWindows()) return "unknown";
            UnixFileMode m = File.GetUnixFileMode(path);
            return Convert.ToString((int)m & 0x1FF, 8).PadLeft(4, '0');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return "unknown (its directory cannot be searched)"; }
    }

    private static string EffectiveUid() => Status("Uid:")?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) is [_, var effective, ..] ? effective : "?";

    private static bool Has(int cap) =>
        ulong.TryParse(Status("CapEff:")?.Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong eff) && (eff & (1UL << cap)) != 0;

    private static string? Status(string key)
    {
        try { return File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?[key.Length..]; }
        catch (IOException) { return null; }
    }
}
