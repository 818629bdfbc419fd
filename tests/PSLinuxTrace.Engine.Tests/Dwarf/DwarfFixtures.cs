using System.Collections.Concurrent;
using PSLinuxTrace.Engine.Tests.Infrastructure;

namespace PSLinuxTrace.Engine.Tests.Dwarf;

/// <summary>
/// The DWARF fixtures, built once per run: the C fixtures through <see cref="Fixtures.Build"/>,
/// their objcopy-compressed copies, and the clang and C++ builds the gcc helper cannot make.
/// Each is named by a short key that test output shows.
/// </summary>
public static class DwarfFixtures
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Built = new();

    private static string UnitsB => Repo.Path("tests", "Fixtures", "dwarf_units_b.c");

    private static readonly Dictionary<string, Func<string>> Recipes = new()
    {
        ["gcc-O0"] = () => Fixtures.Build("dwarf_inline"),
        ["gcc-O2"] = () => Fixtures.Build("dwarf_inline", "-O2"),
        ["gcc-O2-dwarf4"] = () => Fixtures.Build("dwarf_inline", "-O2 -gdwarf-4"),
        ["gcc-O2-dwarf3"] = () => Fixtures.Build("dwarf_inline", "-O2 -gdwarf-3"),
        ["gcc-O2-dwarf2"] = () => Fixtures.Build("dwarf_inline", "-O2 -gdwarf-2"),
        ["gcc-O2-gz-zlib"] = () => Fixtures.Build("dwarf_inline", "-O2 -gz=zlib"),
        ["gcc-O2-objcopy-zstd"] = () => ObjCopy(Get("gcc-O2"), "dwarf_inline-zstd", "--compress-debug-sections=zstd"),
        ["gcc-O2-objcopy-zlib-gnu"] = () => ObjCopy(Get("gcc-O2"), "dwarf_inline-zdebug", "--compress-debug-sections=zlib-gnu"),
        ["gcc-O2-gc-sections"] = () => Fixtures.Build("dwarf_inline", "-O2 -ffunction-sections -Wl,--gc-sections", "dwarf_inline-gc"),
        ["gcc-O2-units"] = () => Fixtures.Build("dwarf_units", $"-O2 {UnitsB}", "dwarf_units-O2"),
        ["gcc-O2-dwarf4-units"] = () => Fixtures.Build("dwarf_units", $"-O2 -gdwarf-4 {UnitsB}", "dwarf_units-O2-dwarf4"),
        ["clang-O2"] = () => Compile("clang", "dwarf_inline.c", "dwarf_inline-clang", "-O2"),
        ["clang-O2-dwarf4"] = () => Compile("clang", "dwarf_inline.c", "dwarf_inline-clang-dwarf4", "-O2", "-gdwarf-4"),
        ["clang-O2-units"] = () => Compile("clang", "dwarf_units.c", "dwarf_units-clang", "-O2", UnitsB),
        ["g++-O2"] = () => Compile("g++", "dwarf_cxx.cc", "dwarf_cxx-gcc", "-O2"),
        ["clang++-O2"] = () => Compile("clang++", "dwarf_cxx.cc", "dwarf_cxx-clang", "-O2"),
    };

    /// <summary>
    /// The file to run the reference tools on: the fixture itself, except where binutils 2.40
    /// cannot read it (its addr2line misses .zdebug_rnglists), where it is the objcopy-decompressed copy.
    /// </summary>
    public static string ReferenceFor(string key) => key == "gcc-O2-objcopy-zlib-gnu"
        ? Built.GetOrAdd(key + "-decompressed", _ => new Lazy<string>(() => ObjCopy(Get(key), "dwarf_inline-zdebug-decompressed", "--decompress-debug-sections"))).Value
        : Get(key);

    /// <summary>Every fixture key, for theories.</summary>
    public static IEnumerable<string> Keys => Recipes.Keys;

    /// <summary>gcc -O2 -gsplit-dwarf: a skeleton unit in the binary, its DIEs in a .dwo beside it (which we do not read).</summary>
    public static string SplitDwarf() =>
        Built.GetOrAdd("gcc-O2-split-dwarf", _ => new Lazy<string>(() =>
        {
            string dir = Path.Combine(Fixtures.ScratchDirectory, "split-dwarf");
            Directory.CreateDirectory(dir);
            string output = Path.Combine(dir, "dwarf_inline");
            // gcc writes the .dwo next to the output; run it there so nothing lands in the test's directory.
            var r = Tool.Run("cc", ["-g", "-O2", "-gsplit-dwarf", "-fno-omit-frame-pointer", "-o", output, Repo.Path("tests", "Fixtures", "dwarf_inline.c")], workingDirectory: dir);
            if (r.ExitCode != 0) throw new InvalidOperationException(r.StdErr);
            return output;
        })).Value;

    /// <summary>The fixture's path (built on first use).</summary>
    public static string Get(string key) =>
        Built.GetOrAdd(key, k => new Lazy<string>(() => Recipes[k]())).Value;

    private static string ObjCopy(string input, string name, params string[] flags)
    {
        string output = Path.Combine(Fixtures.ScratchDirectory, name);
        Tool.Check("objcopy", [.. flags, input, output]);
        return output;
    }

    /// <summary>A fixture built by another compiler than Fixtures.Build's cc, with the same -g and frame-pointer flags.</summary>
    private static string Compile(string compiler, string source, string name, params string[] flags)
    {
        string output = Path.Combine(Fixtures.ScratchDirectory, name);
        Tool.Check(compiler, ["-g", "-fno-omit-frame-pointer", "-o", output, Repo.Path("tests", "Fixtures", source), .. flags]);
        return output;
    }

    /// <summary>
    /// The gcc -O2 fixture split as distributions ship it: a stripped binary with a
    /// .gnu_debuglink, and its debug file (objcopy --only-keep-debug) in <paramref name="layout"/>:
    /// "same-dir", "dot-debug" (.debug/ beside it), "debug-root" (DEBUGDIR + the binary's directory)
    /// or "build-id" (DEBUGDIR/.build-id/xx/yyyy.debug). Returns the binary, the debug file and DEBUGDIR.
    /// </summary>
    public static (string Binary, string DebugFile, string DebugRoot) Split(string layout)
    {
        string root = Path.Combine(Fixtures.ScratchDirectory, "split-" + layout);
        string bin = Path.Combine(root, "bin", "dwarf_inline");
        string debugRoot = Path.Combine(root, "debug");
        lock (Built)
        {
            string debugName = "dwarf_inline.debug";
            string source = Get("gcc-O2");
            string? placed = layout switch
            {
                "same-dir" => Path.Combine(root, "bin", debugName),
                "dot-debug" => Path.Combine(root, "bin", ".debug", debugName),
                "debug-root" => Path.Combine(debugRoot + Path.Combine(root, "bin"), debugName),
                "build-id" => null,
                _ => throw new ArgumentException(layout),
            };
            if (File.Exists(bin)) return (bin, placed ?? BuildIdPath(debugRoot, bin), debugRoot);
            Directory.CreateDirectory(Path.GetDirectoryName(bin)!);
            string debug = Path.Combine(root, debugName);
            Tool.Check("objcopy", "--only-keep-debug", source, debug);
            Tool.Check("objcopy", "--strip-debug", "--strip-unneeded", $"--add-gnu-debuglink={debug}", source, bin);
            placed ??= BuildIdPath(debugRoot, bin);
            Directory.CreateDirectory(Path.GetDirectoryName(placed)!);
            File.Move(debug, placed);
            return (bin, placed, debugRoot);
        }
    }

    private static string BuildIdPath(string debugRoot, string binary)
    {
        using var elf = Engine.Elf.ElfFile.Open(binary);
        string id = elf.BuildIdHex!;
        return Path.Combine(debugRoot, ".build-id", id[..2], id[2..] + ".debug");
    }
}
