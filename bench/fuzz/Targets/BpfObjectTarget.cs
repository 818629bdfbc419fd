using PSLinuxTrace.Engine.Bpf;

namespace PSLinuxTrace.Fuzz;

/// <summary>The BPF object loader's ELF side: maps, license, programs linked with .text; nothing reaches the kernel.</summary>
internal static class BpfObjectTarget
{
    public static void Run(byte[] input)
    {
        var obj = BpfObject.Parse(input, "fuzz.bpf.o");
        foreach (var program in obj.Programs)
        {
            _ = program.Tracepoint;
            _ = program.RawTracepoint;
            _ = program.Functions.Count + program.MapRelocations.Count + program.Instructions.Length;
        }
        _ = obj.Maps.Count + obj.License.Length;
    }
}
