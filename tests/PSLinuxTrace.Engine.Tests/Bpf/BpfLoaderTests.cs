using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Bpf;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Bpf;

/// <summary>The loader on Start-SyscallTrace's BPF object: the committed object, its linking, its loading and its teardown.</summary>
[Collection("Exec")]   // with every test that loads BPF programs: some count this process's BPF fds
public sealed class BpfLoaderTests
{
    private const string Resource = "syscalls.bpf.o";
    private static readonly string[] Programs =
        ["sys_enter", "sys_exit", "sched_process_fork", "sched_process_exec", "sched_process_exit", "signal_deliver"];

    [Fact]
    public void TheEmbeddedObjectIsTheCommittedOne_WithItsCallbacksLinkedIntoThePrograms()
    {
        byte[] embedded = BpfObject.ReadEmbedded(Resource);
        Assert.Equal(File.ReadAllBytes(Repo.Path("src", "bpf", Resource)), embedded);
        BpfObject obj = BpfObject.Parse(embedded, Resource);
        Assert.Equal("GPL", obj.License);
        Assert.Equal(Programs.Order(), obj.Programs.Select(p => p.RawTracepoint!).Order());
        foreach (string name in new[] { "sys_enter", "sys_exit" })
        {
            BpfProgramSpec p = obj.Programs.Single(p => p.RawTracepoint == name);
            // The bpf_loop callbacks of .text follow the program; every callback reference points at one of them.
            Assert.Contains(p.Functions, f => f.Name == "copy_arg");
            Assert.Contains(p.Functions, f => f.Name == "copy_argv_string");
            var starts = p.Functions.Select(f => f.Instruction).ToHashSet();
            int refs = 0;
            for (int i = 0; i + 1 < p.Instructions.Length / 8; i++)
            {
                byte code = p.Instructions[i * 8], src = (byte)(p.Instructions[i * 8 + 1] >> 4);
                if (code != 0x18 || src != 4) continue;   // ld_imm64 of a function (BPF_PSEUDO_FUNC)
                int target = i + 1 + BitConverter.ToInt32(p.Instructions, i * 8 + 4);
                Assert.Contains(target, starts);
                refs++;
            }
            Assert.True(refs > 0, $"{name} refers to no callback");
            Assert.All(p.MapRelocations, r => Assert.Equal(0x18, p.Instructions[r.InstructionIndex * 8]));
        }
    }

    /// <summary>Rebuilds src/bpf/syscalls.bpf.c with clang (as its header says) and fails if the committed object is stale.</summary>
    [Fact]
    public void TheCommittedObjectMatchesItsSource()
    {
        if (!Tool.Exists("clang"))
        {
            Assert.False(Privilege.InCI, "clang is required in CI to check src/bpf/syscalls.bpf.o against its source");
            return;
        }
        string output = Path.Combine(Fixtures.ScratchDirectory, Resource);
        var r = Tool.Run("clang", ["-O2", "-g0", "-target", "bpf", "-c", Repo.Path("src", "bpf", "syscalls.bpf.c"), "-o", output]);
        Assert.True(r.ExitCode == 0, r.StdErr);
        using ElfFile fresh = ElfFile.Open(output), committed = ElfFile.Open(Repo.Path("src", "bpf", Resource));
        var sections = committed.Sections.Where(s => s.Name.StartsWith("raw_tracepoint/") || s.Name.StartsWith(".relraw_tracepoint/")
            || s.Name is ".text" or ".rel.text" or "maps" or "license").Select(s => s.Name).ToList();
        Assert.Equal(2 * Programs.Length + 4, sections.Count);
        foreach (string name in sections)
        {
            ElfSection a = fresh.FindSection(name) ?? throw new Xunit.Sdk.XunitException($"rebuilt object lacks {name}");
            ElfSection b = committed.FindSection(name)!;
            Assert.True(fresh.GetSectionBytes(a).SequenceEqual(committed.GetSectionBytes(b)),
                $"src/bpf/{Resource} is stale: section {name} differs from a fresh build of syscalls.bpf.c. Rebuild it with: " +
                "clang -O2 -g0 -target bpf -c src/bpf/syscalls.bpf.c -o src/bpf/syscalls.bpf.o");
        }
    }

    [PrivilegedFact("CAP_BPF")]
    public void ALoadedCollection_PassesTheVerifier_AndDisposedLeavesNoFd()
    {
        int before = BpfFds();
        var c = BpfCollection.Load(Resource, new Dictionary<string, uint> { ["scratch"] = (uint)PossibleCpus.Count }, NullLogger.Instance);
        Assert.Equal(Programs.Length, c.ProgramIds.Count);
        Assert.True(BpfFds() >= before + Programs.Length + 9, "maps and programs hold fds");
        using (var ring = c.OpenRingBuffer("events")) { }
        Assert.Throws<BadInputFormatException>(() => c.Map("no_such_map"));
        Assert.Throws<BadInputFormatException>(() => c.OpenRingBuffer("config"));
        c.Dispose();
        c.Dispose();   // twice is harmless
        Assert.Equal(before, BpfFds());
    }

    [Fact]
    public void FunctionBtf_DescribesEachFunctionAsAFuncOfItsOwn()
    {
        var (btf, funcInfo) = FunctionBtf.Build([(0, "prog"), (40, "callback")]);
        Assert.Equal(0xEB9F, BitConverter.ToUInt16(btf, 0));
        Assert.Equal(16, funcInfo.Length);
        Assert.Equal((0u, 3u), (BitConverter.ToUInt32(funcInfo, 0), BitConverter.ToUInt32(funcInfo, 4)));
        Assert.Equal((40u, 4u), (BitConverter.ToUInt32(funcInfo, 8), BitConverter.ToUInt32(funcInfo, 12)));
        // Our own BTF reader parses it (int, the prototype, two FUNCs).
        Assert.Equal(4, Btf.FromBytes(btf).TypeCount);
    }

    private static int BpfFds() => Directory.EnumerateFileSystemEntries("/proc/self/fd")
        .Count(fd => new FileInfo(fd).LinkTarget is { } t && t.StartsWith("anon_inode:bpf"));
}
