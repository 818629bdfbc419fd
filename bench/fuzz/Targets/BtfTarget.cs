using PSLinuxTrace.Engine;
using PSLinuxTrace.Engine.Bpf;

namespace PSLinuxTrace.Fuzz;

/// <summary>
/// The BTF parser, as the eBPF engine uses it on /sys/kernel/btf/vmlinux: struct sizes and member
/// offsets by name. A name or member the data lacks is the API's normal answer
/// (UnsupportedFeatureException), so it is not a finding; bad bytes must give BadInputFormatException.
/// </summary>
internal static class BtfTarget
{
    // The structs and paths of the seed (seeds/btf.c) and of the eBPF engine's own lookups.
    private static readonly (string Struct, string Path)[] Lookups =
    [
        ("fuzz_task", "pid"), ("fuzz_task", "ns.inum"), ("fuzz_task", "inner.flags"), ("fuzz_task", "link.next"),
        ("fuzz_ns", "inum"), ("fuzz_node", "next"), ("fuzz_bits", "low"), ("fuzz_bits", "high"),
        ("task_struct", "tgid"), ("pid_namespace", "ns.inum"),
    ];

    public static void Run(byte[] input)
    {
        var btf = Btf.FromBytes(input);
        _ = btf.TypeCount;
        foreach (var (name, path) in Lookups)
        {
            try
            {
                btf.FindStruct(name);
                btf.StructSize(name);
                btf.MemberOffset(name, path);
            }
            catch (UnsupportedFeatureException)
            {
                // not in this data: an answer, not damage
            }
            catch (BadInputFormatException)
            {
                // this struct's records are damaged (or a bit field): the next lookup still runs
            }
        }
    }
}
