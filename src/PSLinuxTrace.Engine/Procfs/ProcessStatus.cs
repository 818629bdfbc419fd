using System.Globalization;

namespace PSLinuxTrace.Engine.Procfs;

/// <summary>The parts of /proc/PID/status the cmdlets use, plus every field by name.</summary>
public sealed record ProcessStatus(
    int Pid,
    string Name,
    char State,
    int Tgid,
    int ParentPid,
    int TracerPid,
    uint RealUid,
    uint EffectiveUid,
    uint RealGid,
    uint EffectiveGid,
    int Threads,
    IReadOnlyDictionary<string, string> Fields)
{
    /// <summary>True for a stopped ('T') or traced-stopped ('t') process.</summary>
    public bool IsStopped => State is 'T' or 't';

    public static ProcessStatus Parse(int pid, string text)
    {
        var fields = new Dictionary<string, string>(64, StringComparer.Ordinal);
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            fields[line[..colon].ToString()] = line[(colon + 1)..].Trim().ToString();
        }
        string Get(string key) => fields.TryGetValue(key, out var v) ? v : "";
        int Int(string key) => int.TryParse(Get(key), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) ? v : 0;
        uint Nth(string key, int n)
        {
            var parts = Get(key).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            return parts.Length > n && uint.TryParse(parts[n], NumberStyles.None, CultureInfo.InvariantCulture, out uint v) ? v : 0;
        }
        string state = Get("State");
        if (!fields.ContainsKey("Name") || state.Length == 0)
            throw new BadInputFormatException($"/proc/{pid}/status has no Name or State line.");
        return new ProcessStatus(pid, Get("Name"), state[0], Int("Tgid"), Int("PPid"), Int("TracerPid"),
            Nth("Uid", 0), Nth("Uid", 1), Nth("Gid", 0), Nth("Gid", 1), Int("Threads"), fields);
    }
}
