using System.Text;
using PSLinuxTrace.HelpBuilder;

// Usage: PSLinuxTrace.HelpBuilder <docs/en-US> <module/en-US output folder>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: PSLinuxTrace.HelpBuilder <markdown folder> <output folder>");
    return 2;
}
string source = args[0], target = args[1];
Directory.CreateDirectory(target);
var commands = new List<CommandHelp>();
foreach (string file in Directory.GetFiles(source, "*.md").Order(StringComparer.Ordinal))
{
    string name = Path.GetFileNameWithoutExtension(file);
    if (name.StartsWith("about_", StringComparison.OrdinalIgnoreCase))
    {
        File.WriteAllText(Path.Combine(target, name + ".help.txt"), AboutTopic.ToHelpText(File.ReadAllText(file)), new UTF8Encoding(false));
        continue;
    }
    try { commands.Add(PlatyPSMarkdown.Parse(File.ReadAllText(file), file)); }
    catch (FormatException ex) { Console.Error.WriteLine($"error: {ex.Message}"); return 1; }
}
string maml = Path.Combine(target, "PSLinuxTrace.dll-Help.xml");
MamlWriter.Write(commands).Save(maml);
Console.WriteLine($"Help: {commands.Count} cmdlets -> {maml}");
return 0;
