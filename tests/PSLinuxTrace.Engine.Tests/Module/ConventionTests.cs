using System.Text.RegularExpressions;
using PSLinuxTrace.Engine.Tests.Infrastructure;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Module;

/// <summary>The design card's rule: Interop/ is the only place with native calls, unsafe code and Marshal.</summary>
public sealed class ConventionTests
{
    [Fact]
    public void NativeCodeLivesOnlyInInterop()
    {
        var forbidden = new Regex(@"\bunsafe\b|\[(LibraryImport|DllImport)\b|\bMarshal\.|\bfixed\s*\(", RegexOptions.Compiled);
        string src = Repo.Path("src");
        var offenders = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") &&
                        !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") &&
                        !f.Contains($"{Path.DirectorySeparatorChar}Interop{Path.DirectorySeparatorChar}"))
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (f, i, line)))
            .Where(x => !x.line.TrimStart().StartsWith("//", StringComparison.Ordinal) && forbidden.IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(src, x.f)}:{x.i + 1}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "native code outside Interop/:\n" + string.Join("\n", offenders));
    }
}
