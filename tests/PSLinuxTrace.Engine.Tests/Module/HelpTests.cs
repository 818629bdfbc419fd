using System.Xml.Linq;
using PSLinuxTrace.HelpBuilder;
using Xunit;

namespace PSLinuxTrace.Engine.Tests.Module;

/// <summary>
/// Every cmdlet and parameter is documented in docs/en-US (platyPS markdown), with real examples,
/// and the MAML that Get-Help reads was built from it.
/// </summary>
public class HelpTests
{
    public static TheoryData<string> CmdletNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in ModuleAssembly.Cmdlets) data.Add(c.Name);
        return data;
    }

    private static CommandHelp Doc(string name)
    {
        string path = Infrastructure.Repo.Path("docs", "en-US", name + ".md");
        Assert.True(File.Exists(path), $"{name} has no docs/en-US/{name}.md");
        return PlatyPSMarkdown.Parse(File.ReadAllText(path), path);
    }

    [Theory, MemberData(nameof(CmdletNames))]
    public void CmdletHasSynopsisDescriptionAndThreeExamples(string name)
    {
        var help = Doc(name);
        Assert.Equal(name, help.Name);
        Assert.False(string.IsNullOrWhiteSpace(help.Synopsis));
        Assert.False(string.IsNullOrWhiteSpace(help.Description));
        Assert.True(help.Examples.Count >= 3, $"{name} has {help.Examples.Count} examples; at least 3 are expected");
        foreach (var e in help.Examples)
        {
            Assert.Contains(name, e.Code);
            Assert.False(string.IsNullOrWhiteSpace(e.Remarks), $"{name} example '{e.Title}' has no explanation");
        }
        Assert.NotEmpty(help.Outputs);
    }

    [Theory, MemberData(nameof(CmdletNames))]
    public void EveryParameterIsDocumentedAsDeclared(string name)
    {
        var help = Doc(name);
        var cmdlet = ModuleAssembly.Cmdlets.Single(c => c.Name == name);
        var documented = help.Parameters.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var p in cmdlet.Parameters)
        {
            Assert.True(documented.TryGetValue(p.Name, out var doc), $"{name} -{p.Name} is not documented");
            Assert.False(string.IsNullOrWhiteSpace(doc!.Description), $"{name} -{p.Name} has no description");
            Assert.Equal(p.TypeName, doc.Type.Length == 0 ? "SwitchParameter" : doc.Type);
            foreach (string alias in p.Aliases) Assert.Contains(alias, doc.Aliases);
            bool mandatoryEverywhere = p.Sets.All(s => s.Mandatory);
            Assert.True(doc.Required == mandatoryEverywhere || p.Sets.Any(s => s.Mandatory) == doc.Required,
                $"{name} -{p.Name}: Required in the doc does not match the cmdlet");
        }
        // -WhatIf and -Confirm come with SupportsShouldProcess; platyPS documents them.
        foreach (var d in help.Parameters.Where(d => !(cmdlet.SupportsShouldProcess && d.Name is "WhatIf" or "Confirm")))
            Assert.True(cmdlet.Parameters.Any(p => string.Equals(p.Name, d.Name, StringComparison.OrdinalIgnoreCase)),
                $"{name} documents -{d.Name}, which the cmdlet does not have");
        Assert.Equal(Math.Max(1, cmdlet.ParameterSets.Count), help.Syntax.Count);
    }

    [Theory, MemberData(nameof(CmdletNames))]
    public void MamlHasTheCommandWithItsParametersAndExamples(string name)
    {
        XNamespace command = "http://schemas.microsoft.com/maml/dev/command/2004/10";
        XNamespace maml = "http://schemas.microsoft.com/maml/2004/10";
        var doc = XDocument.Load(Path.Combine(ModuleAssembly.ModuleDir, "en-US", "PSLinuxTrace.dll-Help.xml"));
        var cmd = doc.Descendants(command + "command").SingleOrDefault(c => c.Element(command + "details")!.Element(command + "name")!.Value == name);
        Assert.NotNull(cmd);
        var cmdlet = ModuleAssembly.Cmdlets.Single(c => c.Name == name);
        var mamlParams = cmd!.Element(command + "parameters")!.Elements(command + "parameter").Select(p => p.Element(maml + "name")!.Value).ToHashSet();
        foreach (var p in cmdlet.Parameters) Assert.Contains(p.Name, mamlParams);
        Assert.True(cmd.Descendants(command + "example").Count() >= 3);
    }

    [Fact]
    public void AboutTopicExists()
    {
        string text = File.ReadAllText(Path.Combine(ModuleAssembly.ModuleDir, "en-US", "about_PSLinuxTrace.help.txt"));
        Assert.StartsWith("TOPIC", text);
        foreach (var c in ModuleAssembly.Cmdlets) Assert.Contains(c.Name, text);
    }
}
