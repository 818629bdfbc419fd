using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Procfs;

namespace PSLinuxTrace.Engine.Symbols;

/// <summary>
/// Get-ProcSymbol -Watch: the same scan every interval, yielding only locations not seen before (a process
/// that appears, or loads a matching library), until cancelled. A process that is gone is forgotten, so a
/// reused pid is reported again. Each (process, error) is reported once per watch, and a named process
/// that exits after the first scan is not an error (it was watched until it went).
/// </summary>
public sealed class ProcSymbolWatch(ProcSymbolScanner scanner, ProcSymbolQuery query, IReadOnlyList<int>? pids, TimeSpan interval)
{
    /// <summary>New locations as each scan finds them; <paramref name="onScanned"/> gets each scan's count of new ones.</summary>
    public IEnumerable<ProcSymbol> Run(Action<LinuxTraceException, int> onError, Action<int> onScanned, CancellationToken cancel)
    {
        var seen = new HashSet<(int Pid, string Module, string Name, ulong Address)>();
        var reported = new HashSet<(int Pid, string ErrorId)>();
        bool rescanning = false;
        void Report(LinuxTraceException ex, int pid)
        {
            if (rescanning && ex is ProcessNotFoundException) return;
            if (reported.Add((pid, ex.ErrorId))) onError(ex, pid);
        }
        while (!cancel.IsCancellationRequested)
        {
            int found = 0;
            foreach (var symbol in scanner.Scan(query, pids, Report, cancel))
            {
                if (!seen.Add((symbol.Pid, symbol.ModulePath, symbol.Name, symbol.Address))) continue;
                found++;
                yield return symbol;
            }
            onScanned(found);
            rescanning = true;
            seen.RemoveWhere(k => !ProcFs.Exists(k.Pid));
            if (cancel.WaitHandle.WaitOne(interval)) yield break;
        }
    }
}
