using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Exec;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Exec;

/// <summary>The committed BPF object, its parsing, and the BTF offsets the loader feeds it.</summary>
public sealed class BpfObjectTests
{
    private static readonly string[] Sections =
    [
        "tracepoint/syscalls/sys_enter_execve", "tracepoint/syscalls/sys_enter_execveat",
        "tracepoint/syscalls/sys_exit_execve", "tracepoint/syscalls/sys_exit_execveat", "maps", "license",
    ];

    [Fact]
    public void TheEmbeddedObjectIsTheCommittedOneAndParses()
    {
        byte[] embedded = BpfObject.ReadEmbedded(ExecWatcher.ObjectResource);
        Assert.Equal(File.ReadAllBytes(Repo.Path("src", "bpf", "exec.bpf.o")), embedded);
        BpfObject obj = BpfObject.Parse(embedded, "exec.bpf.o");
        Assert.Equal("GPL", obj.License);
        Assert.Equal(["config", "counters", "events", "scratch"], obj.Maps.Select(m => m.Name).Order());
        Assert.Equal(27u, obj.Maps.Single(m => m.Name == "events").Type);
        Assert.Equal(Sections.Take(4).Order(), obj.Programs.Select(p => p.Section).Order());
        Assert.All(obj.Programs, p =>
        {
            Assert.NotEmpty(p.MapRelocations);
            Assert.All(p.MapRelocations, r => Assert.Equal(0x18, p.Instructions[r.InstructionIndex * 8]));
        });
    }

    /// <summary>Rebuilds src/bpf/exec.bpf.c with clang (as its header says) and fails if the committed object is stale.</summary>
    [Fact]
    public void TheCommittedObjectMatchesItsSource()
    {
        if (!Tool.Exists("clang"))
        {
            Assert.False(Privilege.InCI, "clang is required in CI to check src/bpf/exec.bpf.o against its source");
            return;   // a developer machine without clang: nothing to compare with
        }
        string output = Path.Combine(Fixtures.ScratchDirectory, "exec.bpf.o");
        var r = Tool.Run("clang", ["-O2", "-g0", "-target", "bpf", "-c", Repo.Path("src", "bpf", "exec.bpf.c"), "-o", output]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using ElfFile fresh = ElfFile.Open(output), committed = ElfFile.Open(Repo.Path("src", "bpf", "exec.bpf.o"));
        foreach (string name in Sections.Concat(Sections.Take(4).Select(s => ".rel" + s)))
        {
            ElfSection a = fresh.FindSection(name) ?? throw new Xunit.Sdk.XunitException($"rebuilt object lacks {name}");
            ElfSection b = committed.FindSection(name) ?? throw new Xunit.Sdk.XunitException($"committed object lacks {name}");
            Assert.True(fresh.GetSectionBytes(a).SequenceEqual(committed.GetSectionBytes(b)),
                $"src/bpf/exec.bpf.o is stale: section {name} differs from a fresh build of exec.bpf.c. Rebuild it with: " +
                "clang -O2 -g0 -target bpf -c src/bpf/exec.bpf.c -o src/bpf/exec.bpf.o");
        }
    }

    [Fact]
    public void BadObjectsAreBadInputFormat()
    {
        Assert.Throws<BadInputFormatException>(() => BpfObject.Parse([1, 2, 3], "junk"));
        byte[] obj = BpfObject.ReadEmbedded(ExecWatcher.ObjectResource);
        Assert.Throws<BadInputFormatException>(() => BpfObject.Parse(obj[..200], "truncated"));
        byte[] wrongMachine = (byte[])obj.Clone();
        wrongMachine[18] = 62;   // e_machine = EM_X86_64
        Assert.Throws<BadInputFormatException>(() => BpfObject.Parse(wrongMachine, "x86"));
        Assert.Throws<BadInputFormatException>(() => Btf.FromBytes(new byte[64]));
    }

    /// <summary>The offsets the loader resolves from vmlinux BTF are the ones bpftool's BTF dump shows.</summary>
    [Fact]
    public void BtfOffsetsMatchBpftool()
    {
        Assert.True(File.Exists(Btf.VmlinuxPath), "this kernel has BTF");
        var btf = Btf.LoadVmlinux();
        string dump = Tool.Check("bpftool", "btf", "dump", "file", Btf.VmlinuxPath);
        foreach (var (type, member) in new[] { ("task_struct", "real_parent"), ("task_struct", "tgid"), ("task_struct", "thread_pid"), ("pid", "level"), ("pid", "numbers"), ("upid", "ns") })
        {
            var m = Regex.Match(dump, @"\] STRUCT '" + type + @"' size=\d+ vlen=\d+\n(?:\t.*\n)*?\t'" + member + @"' type_id=\d+ bits_offset=(\d+)");
            Assert.True(m.Success, $"bpftool shows no {type}.{member}");
            Assert.Equal(uint.Parse(m.Groups[1].Value) / 8, btf.MemberOffset(type, member));
        }
        Assert.Throws<UnsupportedFeatureException>(() => btf.MemberOffset("task_struct", "no_such_member_pslt"));
        Assert.Throws<UnsupportedFeatureException>(() => btf.MemberOffset("no_such_struct_pslt", "x"));
    }
}
