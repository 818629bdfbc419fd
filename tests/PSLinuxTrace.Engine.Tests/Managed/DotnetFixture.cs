using System.Collections.Concurrent;
using PSLinuxTrace.Engine.Tests.Cores;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Managed;

/// <summary>
/// The .NET fixture (tests/Fixtures/dotnet_interop): its C library built with gcc and its console app with
/// `dotnet build` against the installed SDK (framework-dependent, so it runs on the machine's shared runtime),
/// once per test run, in the scratch folder. Its known call chain is what the tests expect, innermost first.
/// </summary>
public static class DotnetFixture
{
    private static readonly Lazy<string> Built = new(Build);
    private static readonly ConcurrentDictionary<string, Lazy<string>> Cores = new();

    /// <summary>The managed methods of `crash`, innermost first, as the runtime names them.</summary>
    public static readonly string[] CrashChain =
        ["PsltFixture.Program.Crash()", "PsltFixture.Program.OnCallback(Int32)", "PsltFixture.Program.CallNative(Int32)", "PsltFixture.Program.Outer(Int32)", "PsltFixture.Program.Main(System.String[])"];

    /// <summary>The native functions between them: pslt_native_crash above Crash, pslt_native_inner and pslt_native_call between OnCallback and CallNative.</summary>
    public const string CrashFunction = "pslt_native_crash", InnerFunction = "pslt_native_inner", CallFunction = "pslt_native_call";

    /// <summary>The app host (an ELF executable that loads the shared runtime), next to PsltFixture.dll and libpslt_native.so.</summary>
    public static string Executable => Built.Value;

    /// <summary>A kernel core of `PsltFixture crash` (SIGSEGV in pslt_native_crash), made once per run.</summary>
    public static string Core => CoreFixtures.Kernel("dotnet-crash", () => Executable, "crash", 0).Core;

    private static string Build()
    {
        string dir = Path.Combine(Fixtures.ScratchDirectory, "dotnet_interop");
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.GetFiles(Repo.Path("tests", "Fixtures", "dotnet_interop")))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)), overwrite: true);
        string output = Path.Combine(dir, "out");
        var cc = Tool.Run("cc", ["-g", "-O2", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", Path.Combine(dir, "libpslt_native.so"), Path.Combine(dir, "native.c")]);
        Assert.True(cc.ExitCode == 0, cc.StdErr);
        // No build server: it would outlive the test run (and nothing here reaps orphans).
        var build = Tool.Run("dotnet", ["build", Path.Combine(dir, "PsltFixture.csproj"), "-c", "Release", "-o", output, "--disable-build-servers", "-nologo", "-v", "q"],
            TimeSpan.FromMinutes(3), dir, new Dictionary<string, string> { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });
        Assert.True(build.ExitCode == 0, $"dotnet build failed:\n{build.StdOut}\n{build.StdErr}");
        File.Copy(Path.Combine(dir, "libpslt_native.so"), Path.Combine(output, "libpslt_native.so"), overwrite: true);
        return Path.Combine(output, "PsltFixture");
    }
}
