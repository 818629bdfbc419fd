using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using PSLinuxTrace.Engine.Elf;
using PSLinuxTrace.Engine.Model;
using PSLinuxTrace.Engine.Symbols;
using PSLinuxTrace.Engine.Tests.Elf;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Symbols;

/// <summary>
/// Get-ProcSymbol's engine on real processes: each address is checked against what the process
/// itself printed and against the bytes read at that address from /proc/PID/mem; libc symbols
/// against gdb.
/// </summary>
public class ProcSymbolScannerTests
{
    private static List<ProcSymbol> Scan(int pid, string[] names, string[]? paths = null, List<LinuxTraceException>? errors = null)
    {
        using var scanner = new ProcSymbolScanner(NullLogger.Instance);
        return scanner.Scan(new ProcSymbolQuery(names, paths), new[] { pid }, (ex, _) =>
        {
            if (errors is null) throw ex;
            errors.Add(ex);
        }).ToList();
    }

    private static ulong ReadU64(int pid, ulong address)
    {
        using var mem = new FileStream($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
        mem.Seek((long)address, SeekOrigin.Begin);
        var b = new byte[8];
        mem.ReadExactly(b);
        return BitConverter.ToUInt64(b);
    }

    public static TheoryData<string> Builds() => new() { "", "-no-pie", "-static" };

    [PrivilegedTheory("read /proc/PID/mem and /proc/PID/map_files")]
    [MemberData(nameof(Builds))]
    public void FixtureSymbolsResolveToTheAddressesTheProcessUses(string flags)
    {
        string exe = Fixtures.Build("symbols", flags);
        using var p = FixtureProcess.Start(exe);
        var found = Scan(p.Pid, new[] { "pslt_data_marker", "pslt_rodata_marker", "pslt_bss_counter", "pslt_function", "pslt_static_local", "pslt_tls_var" },
            new[] { exe });
        ProcSymbol S(string n) => Assert.Single(found, s => s.Name == n);

        foreach (string n in new[] { "pslt_data_marker", "pslt_rodata_marker", "pslt_bss_counter", "pslt_function", "pslt_static_local" })
            Assert.Equal(p.Address(n), S(n).Address);
        Assert.Equal(0x1122334455667788UL, ReadU64(p.Pid, S("pslt_data_marker").Address));     // rw-p
        Assert.Equal(0x8877665544332211UL, ReadU64(p.Pid, S("pslt_rodata_marker").Address));   // r--p
        Assert.Equal(0xabcdef0123456789UL, ReadU64(p.Pid, S("pslt_bss_counter").Address));     // anonymous, past the file
        Assert.Equal(ElfSymbolKind.Function, S("pslt_function").Kind);
        Assert.Equal(ElfSymbolBinding.Local, S("pslt_static_local").Binding);
        Assert.Equal(ElfSymbolKind.Tls, S("pslt_tls_var").Kind);

        var data = S("pslt_data_marker");
        Assert.Equal(p.Pid, data.Pid);
        Assert.Equal("symbols", data.ProcessName[..Math.Min(7, data.ProcessName.Length)]);
        Assert.Equal(exe, data.ModulePath);
        Assert.False(data.ModuleDeleted);
        Assert.Equal("symtab", data.Source);
        using var elf = ElfFile.Open(exe);
        Assert.Equal(elf.BuildIdHex, data.BuildId);
        Assert.Equal(elf.SymbolTable!.Lookup("pslt_data_marker")!.Value + data.ModuleBase, data.Address);
        if (flags.Length > 0) Assert.Equal(0UL, data.ModuleBase); // non-PIE and static: no bias
        else Assert.NotEqual(0UL, data.ModuleBase);
    }

    [PrivilegedFact("read /proc/PID/mem")]
    public void SharedLibrarySymbolsResolve()
    {
        string lib = ElfReaderTests.SharedLibrary();
        using var p = FixtureProcess.Start(Fixtures.Build("symlib_main", "-ldl"), lib);
        var found = Scan(p.Pid, new[] { "pslt_lib_*" }, new[] { "libpsltfix.so" });
        Assert.Equal(p.Address("pslt_lib_global"), Assert.Single(found, s => s.Name == "pslt_lib_global" && s.Source == "dynsym").Address);
        Assert.Equal(p.Address("pslt_lib_function"), Assert.Single(found, s => s.Name == "pslt_lib_function").Address);
        Assert.Equal(p.Address("pslt_lib_text"), Assert.Single(found, s => s.Name == "pslt_lib_text").Address);
        Assert.Equal(0x1111111111111111UL, ReadU64(p.Pid, p.Address("pslt_lib_global")));
        Assert.All(found, s => Assert.Equal(lib, s.ModulePath));
        // Each name once per module, though it is in both .dynsym and .symtab.
        Assert.Equal(found.Count, found.Select(s => s.Name).Distinct().Count());
    }

    [PrivilegedFact("gdb -p attaches with ptrace")]
    public void LibcSymbolsMatchGdb()
    {
        using var p = FixtureProcess.Start(Fixtures.Build("symbols"));
        var found = Scan(p.Pid, new[] { "malloc", "free", "environ", "printf" }, new[] { "libc.so*" });
        Assert.Equal(4, found.Count);
        var gdb = Tool.Run("gdb", new[] { "-nx", "-batch", "-iex", "set debuginfod enabled off", "-p", p.Pid.ToString(),
            "-ex", "info address malloc", "-ex", "info address free", "-ex", "info address environ", "-ex", "info address printf" });
        foreach (var s in found)
        {
            var m = Regex.Match(gdb.StdOut, $"Symbol \"{s.Name}\" is (?:at|static storage at address) 0x([0-9a-f]+)");
            Assert.True(m.Success, $"gdb said nothing about {s.Name}:\n{gdb.StdOut}\n{gdb.StdErr}");
            Assert.Equal(ElfReaderTests.Hex(m.Groups[1].Value), s.Address);
            Assert.Equal(ElfReaderTests.LibC, Tool.Check("readlink", "-f", s.ModulePath).Trim());
        }
        // gdb detached; the fixture sleeps in read(2) again, untraced.
        var status = PSLinuxTrace.Engine.Procfs.ProcFs.ReadStatus(p.Pid);
        Assert.Equal('S', status.State);
        Assert.Equal(0, status.TracerPid);
    }

    [PrivilegedFact("open /proc/PID/map_files")]
    public void ADeletedBinaryStillResolves()
    {
        string copy = Path.Combine(Fixtures.ScratchDirectory, $"deleted-{Guid.NewGuid():N}");
        File.Copy(Fixtures.Build("symbols"), copy);
        Tool.Check("chmod", "0500", copy);
        using var p = FixtureProcess.Start(copy);
        File.Delete(copy);
        var s = Assert.Single(Scan(p.Pid, new[] { "pslt_data_marker" }));
        Assert.True(s.ModuleDeleted);
        Assert.Equal(copy, s.ModulePath);
        Assert.Equal(p.Address("pslt_data_marker"), s.Address);
        Assert.Equal(0x1122334455667788UL, ReadU64(p.Pid, s.Address));
    }

    [PrivilegedFact("unshare -m and mount --bind")]
    public void AProcessInAnotherMountNamespaceResolvesAgainstItsOwnFile()
    {
        // Two builds of one library with different layouts. The process sees build B at the path
        // where we (outside its namespace) see build A; only opening the file through the process
        // gives the right addresses.
        string libA = ElfReaderTests.SharedLibrary("0xaaaaaaaaaaaaaaaaULL", 1, "libns.so");
        string libB = ElfReaderTests.SharedLibrary("0xbbbbbbbbbbbbbbbbULL", 3000, "libns.so");
        using (var a = ElfFile.Open(libA))
        using (var b = ElfFile.Open(libB))
            Assert.NotEqual(a.DynamicSymbols!.Lookup("pslt_lib_global")!.Value, b.DynamicSymbols!.Lookup("pslt_lib_global")!.Value);
        string main = Fixtures.Build("symlib_main", "-ldl");
        using var p = FixtureProcess.Start("unshare", new[] { "-m", "--propagation", "private", "sh", "-c",
            "mount --bind \"$1\" \"$2\" && exec \"$3\" \"$2\"", "sh", libB, libA, main }, null);
        var s = Assert.Single(Scan(p.Pid, new[] { "pslt_lib_global" }, new[] { "libns.so" }));
        Assert.Equal(libA, s.ModulePath); // the path as the process sees it
        Assert.Equal(p.Address("pslt_lib_global"), s.Address);
        Assert.Equal(0xbbbbbbbbbbbbbbbbUL, ReadU64(p.Pid, s.Address));
    }

    [Fact]
    public void AMissingPidIsReportedAndNothingFoundIsNoOutput()
    {
        var errors = new List<LinuxTraceException>();
        int dead = Procfs.ProcFsTests.DeadPid();
        Assert.Empty(Scan(dead, new[] { "malloc" }, null, errors));
        Assert.Equal(dead, Assert.IsType<ProcessNotFoundException>(Assert.Single(errors)).ProcessId);

        using var p = FixtureProcess.Start(Fixtures.Build("symbols"));
        errors.Clear();
        Assert.Empty(Scan(p.Pid, new[] { "pslt_no_such_symbol_*" }, null, errors));
        Assert.Empty(Scan(p.Pid, new[] { "malloc" }, new[] { "no-such-file.so" }, errors));
        Assert.Empty(errors);
    }

    [Fact]
    public void InvalidGlobsAreArgumentErrors()
    {
        Assert.Throws<ArgumentException>(() => new ProcSymbolQuery(new[] { "mal[loc" }));
        Assert.Throws<ArgumentException>(() => new ProcSymbolQuery(new[] { "malloc" }, new[] { "lib`" }));
        Assert.Throws<ArgumentException>(() => new ProcSymbolQuery(Array.Empty<string>()));
    }

    [PrivilegedFact("scan every process")]
    public void AWholeMachineScanParsesEachFileOnceAndFindsTheFixture()
    {
        using var p1 = FixtureProcess.Start(Fixtures.Build("symbols"));
        using var p2 = FixtureProcess.Start(Fixtures.Build("symbols"));
        using var scanner = new ProcSymbolScanner(NullLogger.Instance);
        var errors = new List<LinuxTraceException>();
        var all = scanner.Scan(new ProcSymbolQuery(new[] { "malloc", "pslt_data_marker" }), null, (e, _) => errors.Add(e)).ToList();
        Assert.Contains(all, s => s.Pid == p1.Pid && s.Name == "pslt_data_marker" && s.Address == p1.Address("pslt_data_marker"));
        Assert.Contains(all, s => s.Pid == p2.Pid && s.Name == "pslt_data_marker" && s.Address == p2.Address("pslt_data_marker"));
        Assert.Contains(all, s => s.Pid == Environment.ProcessId && s.Name == "malloc");
        // Only processes that the kernel does not let us read (in a sandbox: another user namespace's init) may fail, as PermissionDenied.
        foreach (var e in errors)
        {
            var denied = Assert.IsType<TargetPermissionDeniedException>(e);
            int pid = int.Parse(Regex.Match(denied.Message, @"/proc/(\d+)/").Groups[1].Value);
            Assert.ThrowsAny<UnauthorizedAccessException>(() => File.ReadAllText($"/proc/{pid}/maps"));
        }
        errors.Clear();
        int parsed = scanner.FilesParsed;
        var distinctFiles = all.Select(s => s.ModulePath).Distinct().Count();
        Assert.True(parsed >= distinctFiles);
        // A second pass over the same processes parses nothing new.
        _ = scanner.Scan(new ProcSymbolQuery(new[] { "free" }), new[] { p1.Pid, p2.Pid }, (e, _) => errors.Add(e)).ToList();
        Assert.Equal(parsed, scanner.FilesParsed);
    }
}
