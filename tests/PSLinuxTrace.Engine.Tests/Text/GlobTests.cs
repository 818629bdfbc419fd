using PSLinuxTrace.Engine.Text;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Text;

/// <summary>PowerShell wildcard semantics for -Name and -Path.</summary>
public class GlobTests
{
    [Theory]
    [InlineData("malloc", "malloc", true)]
    [InlineData("malloc", "Malloc", false)]
    [InlineData("mal*", "malloc", true)]
    [InlineData("*alloc", "calloc", true)]
    [InlineData("?alloc", "malloc", true)]
    [InlineData("?alloc", "alloc", false)]
    [InlineData("[cm]alloc", "calloc", true)]
    [InlineData("[cm]alloc", "valloc", false)]
    [InlineData("[a-d]alloc", "calloc", true)]
    [InlineData("libc.so*", "libc.so.6", true)]
    [InlineData("libc.so*", "libcXso.6", false)]
    [InlineData("a`*b", "a*b", true)]
    [InlineData("a`*b", "axb", false)]
    [InlineData("x`[1]", "x[1]", true)]
    [InlineData("(deleted)*", "(deleted) x", true)]
    [InlineData("^$.+", "^$.+", true)]
    public void MatchesLikePowerShellWildcards(string pattern, string text, bool expected)
    {
        Assert.Equal(expected, new Glob(pattern).IsMatch(text));
    }

    [Fact]
    public void LiteralsAreRecognisedSoLookupsCanUseHashTables()
    {
        Assert.False(new Glob("malloc").HasWildcards);
        Assert.Equal("malloc", new Glob("malloc").Literal);
        Assert.Equal("a*b", new Glob("a`*b").Literal);
        Assert.True(new Glob("m*").HasWildcards);
        Assert.True(Glob.ContainsWildcards("a[b]"));
        Assert.False(Glob.ContainsWildcards("a`[b"));
    }

    [Theory]
    [InlineData("mal[loc")]
    [InlineData("trailing`")]
    public void InvalidPatternsAreArgumentErrors(string pattern)
    {
        var ex = Assert.Throws<ArgumentException>(() => new Glob(pattern));
        Assert.Contains(pattern, ex.Message);
    }
}
