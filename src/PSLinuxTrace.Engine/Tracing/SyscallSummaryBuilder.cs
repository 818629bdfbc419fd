using PSLinuxTrace.Engine.Model;

namespace PSLinuxTrace.Engine.Tracing;

/// <summary>strace -c: calls, errors and time per system call name.</summary>
public sealed class SyscallSummaryBuilder
{
    private readonly Dictionary<string, (long Calls, long Errors, long Ticks)> _rows = new(StringComparer.Ordinal);

    public void Add(SyscallEvent e)
    {
        _rows.TryGetValue(e.Name, out var r);
        _rows[e.Name] = (r.Calls + 1, r.Errors + (e.Errno is null ? 0 : 1), r.Ticks + e.Duration.Ticks);
    }

    /// <summary>Totals counted elsewhere (the eBPF engine counts in the kernel).</summary>
    public void Add(string name, long calls, long errors, TimeSpan time)
    {
        _rows.TryGetValue(name, out var r);
        _rows[name] = (r.Calls + calls, r.Errors + errors, r.Ticks + time.Ticks);
    }

    /// <summary>One row per name, most total time first (strace -c's order).</summary>
    public IReadOnlyList<SyscallSummary> Build()
    {
        long total = _rows.Values.Sum(r => r.Ticks);
        return _rows.OrderByDescending(kv => kv.Value.Ticks).ThenByDescending(kv => kv.Value.Calls).ThenBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new SyscallSummary
            {
                Name = kv.Key,
                Calls = kv.Value.Calls,
                Errors = kv.Value.Errors,
                TotalTime = TimeSpan.FromTicks(kv.Value.Ticks),
                AverageTime = TimeSpan.FromTicks(kv.Value.Ticks / Math.Max(1, kv.Value.Calls)),
                PercentTime = total == 0 ? 0 : Math.Round(100.0 * kv.Value.Ticks / total, 2),
            }).ToList();
    }
}
